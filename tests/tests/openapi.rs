//! functions/config-api/openapi.yaml is the config API: every route the router knows is in
//! it (and nothing else), and real responses of every route, success and error, validate
//! against the schemas it documents for their status.

use gowa_sim::SimConfig;
use http::StatusCode;
use serde_json::{Value, json};
use wagate_tests::ApiEvent;
use wagate_tests::api::api;
use wagate_tests::sim_contract::checked;
use wagate_tests::spec::{check, resolve, spec};

#[test]
fn every_route_of_the_router_is_documented_and_nothing_else() {
    let doc = spec();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for m in ["get", "post", "put", "delete", "patch"] {
            if item.get(m).is_some() {
                documented.push((m.to_uppercase(), path.clone()));
            }
        }
    }
    let mut routed: Vec<(String, String)> = config_api::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    routed.sort();
    documented.sort();
    assert_eq!(routed, documented);
}

#[test]
fn every_operation_documents_the_refusals_it_can_answer() {
    let doc = spec();
    let codes: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "no_route",
        "method_not_allowed",
        "state_conflict",
        "secret_unusable",
        "version_conflict",
        "dependency_unavailable",
    ] {
        assert!(codes.contains(&code), "Error.error lacks {code}");
    }
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let path_params = item["parameters"].as_array().cloned().unwrap_or_default();
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let has = |status: &str| op["responses"].get(status).is_some();
            let authenticated = op.get("security") != Some(&json!([]));
            let mut want: Vec<&str> = Vec::new();
            if authenticated {
                want.extend(["401", "403", "503"]);
            }
            if op.get("requestBody").is_some() {
                want.extend(["400", "413", "415"]);
            }
            let params: Vec<Value> = path_params
                .iter()
                .chain(op["parameters"].as_array().into_iter().flatten())
                .map(|p| resolve(&doc, p).clone())
                .collect();
            // A parameter the server checks (a pattern, a range, a boolean) can be refused.
            if params.iter().any(|p| {
                let s = resolve(&doc, &p["schema"]);
                p["in"] == "query"
                    || p["in"] == "header"
                    || s.get("pattern").is_some()
                    || s.get("$ref").is_some()
            }) && authenticated
            {
                want.push("400");
            }
            for status in want {
                if !has(status) {
                    missing.push(format!("{} {path}: {status}", method.to_uppercase()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented refusals: {missing:#?}");
}

#[tokio::test]
async fn every_route_answers_what_the_spec_documents() {
    let doc = spec();
    let api = api().await;
    let admin = api.admin();
    let tenant = api.tenant("acme");
    let other = api.tenant("other");
    // What the connection tests send to the servers is checked against GOWA's spec too.
    let (a, b) = (
        checked(gowa_sim::start(SimConfig::default()).await.unwrap()),
        checked(gowa_sim::start(SimConfig::default()).await.unwrap()),
    );
    let cfg = json!({
        "provider": "gowa",
        "primary": {"baseUrl": a.base_url(), "credentials": {"type": "basic", "username": "u", "password": "p-0123456789abcdef"}, "deviceId": "demo", "webhookWiring": "manual"},
        "backup": {"baseUrl": b.base_url(), "credentials": {"type": "none"}, "deviceId": "demo", "webhookWiring": "manual"},
        "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-1"}]
    });
    let mut wired_cfg = cfg.clone();
    wired_cfg["primary"]
        .as_object_mut()
        .unwrap()
        .remove("webhookWiring");
    wired_cfg.as_object_mut().unwrap().remove("backup");
    let cfg_path = "/tenants/{tenantId}/whatsapp-config";
    let mut calls: Vec<(&str, &str, ApiEvent)> = vec![
        ("POST", cfg_path, ApiEvent::new("POST", "/tenants/acme/whatsapp-config").bearer(&admin).json(&cfg)),
        ("POST", cfg_path, ApiEvent::new("POST", "/tenants/acme/whatsapp-config").bearer(&admin).json(&cfg)),
        ("POST", cfg_path, ApiEvent::new("POST", "/tenants/bad/whatsapp-config").bearer(&admin).json(&json!({}))),
        ("GET", cfg_path, ApiEvent::new("GET", "/tenants/acme/whatsapp-config").bearer(&tenant)),
        ("GET", cfg_path, ApiEvent::new("GET", "/tenants/nope/whatsapp-config").bearer(&admin)),
        ("PUT", cfg_path, ApiEvent::new("PUT", "/tenants/acme/whatsapp-config").bearer(&admin).header("If-Match", "\"1\"").json(&cfg)),
        ("PUT", cfg_path, ApiEvent::new("PUT", "/tenants/acme/whatsapp-config").bearer(&admin).json(&cfg)),
        ("PUT", cfg_path, ApiEvent::new("PUT", "/tenants/acme/whatsapp-config").bearer(&admin).header("If-Match", "\"1\"").json(&cfg)),
        ("GET", "/tenants", ApiEvent::new("GET", "/tenants").bearer(&admin)),
        ("GET", "/tenants", ApiEvent::new("GET", "/tenants").bearer(&tenant)),
        ("POST", "/tenants/{tenantId}/whatsapp-config/test", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/test").bearer(&tenant)),
        ("POST", "/tenants/{tenantId}/whatsapp-config/test", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/test").bearer(&tenant).json(&json!({"candidate": {"baseUrl": "http://127.0.0.1:9", "credentials": {"type": "none"}}}))),
        ("POST", "/tenants/{tenantId}/whatsapp-config/test", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/test").bearer(&tenant).json(&json!({"candidate": {"baseUrl": "http://10.1.1.1"}}))),
        ("POST", "/tenants/{tenantId}/whatsapp-config/rotate-credential", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/rotate-credential").bearer(&tenant).json(&json!({"credentials": {"type": "basic", "username": "u", "password": "p2-0123456789abcdef"}}))),
        ("POST", "/tenants/{tenantId}/whatsapp-config/rotate-credential", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/rotate-credential").bearer(&tenant).json(&json!({"credentials": {"type": "none"}, "version": 1}))),
        ("POST", "/tenants/{tenantId}/whatsapp-config/rotate-webhook-secret", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/rotate-webhook-secret").bearer(&tenant)),
        ("POST", "/tenants/{tenantId}/whatsapp-config/rotate-webhook-secret", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/rotate-webhook-secret").bearer(&tenant).json(&json!({"graceSeconds": 1e12}))),
        ("POST", "/tenants/{tenantId}/whatsapp-config/switch", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/switch").bearer(&tenant).json(&json!({"action": "activate", "to": "backup", "dryRun": true}))),
        ("POST", "/tenants/{tenantId}/whatsapp-config/switch", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/switch").bearer(&tenant).json(&json!({"action": "activate", "to": "backup", "version": 4}))),
        ("POST", "/tenants/{tenantId}/whatsapp-config/switch", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/switch").bearer(&tenant).json(&json!({"action": "replace", "role": "backup", "version": 5, "endpoint": {"baseUrl": "http://127.0.0.1:9", "credentials": {"type": "none"}}}))),
        ("POST", "/tenants/{tenantId}/whatsapp-config/switch", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/switch").bearer(&tenant).json(&json!({"action": "swap"}))),
        ("POST", "/tenants/{tenantId}/whatsapp-config/switch", ApiEvent::new("POST", "/tenants/acme/whatsapp-config/switch").bearer(&tenant).json(&json!({"action": "swap", "version": 1}))),
        ("GET", "/tenants/{tenantId}/audit", ApiEvent::new("GET", "/tenants/acme/audit").bearer(&tenant)),
        ("GET", "/tenants/{tenantId}/audit", ApiEvent::new("GET", "/tenants/acme/audit").bearer(&other)),
        ("GET", "/tenants/{tenantId}/status", ApiEvent::new("GET", "/tenants/acme/status").bearer(&tenant)),
        ("GET", "/tenants/{tenantId}/status", ApiEvent::new("GET", "/tenants/nope/status").bearer(&admin)),
        // Issue 15: device management and webhook wiring (the simulators' `demo` devices).
        ("GET", "/tenants/{tenantId}/devices/{role}", ApiEvent::new("GET", "/tenants/acme/devices/primary").bearer(&tenant)),
        ("GET", "/tenants/{tenantId}/devices/{role}", ApiEvent::new("GET", "/tenants/acme/devices/third").bearer(&tenant)),
        ("POST", "/tenants/{tenantId}/devices/{role}", ApiEvent::new("POST", "/tenants/acme/devices/backup").bearer(&tenant)),
        ("POST", "/tenants/{tenantId}/devices/{role}/qr", ApiEvent::new("POST", "/tenants/acme/devices/primary/qr").bearer(&tenant)),
        ("POST", "/tenants/{tenantId}/devices/{role}/pairing-code", ApiEvent::new("POST", "/tenants/acme/devices/primary/pairing-code").bearer(&tenant).json(&json!({"phone": "0812"}))),
        ("POST", "/tenants/{tenantId}/devices/{role}/logout", ApiEvent::new("POST", "/tenants/acme/devices/primary/logout").bearer(&tenant)),
        ("POST", "/tenants/{tenantId}/devices/{role}/qr", ApiEvent::new("POST", "/tenants/acme/devices/primary/qr").bearer(&tenant)),
        ("POST", "/tenants/{tenantId}/devices/{role}/pairing-code", ApiEvent::new("POST", "/tenants/acme/devices/primary/pairing-code").bearer(&tenant).json(&json!({"phone": "+6281234567890"}))),
        ("POST", "/tenants/{tenantId}/devices/{role}/reconnect", ApiEvent::new("POST", "/tenants/acme/devices/primary/reconnect").bearer(&tenant)),
        ("GET", "/tenants/{tenantId}/devices/{role}/webhook", ApiEvent::new("GET", "/tenants/acme/devices/primary/webhook").bearer(&tenant)),
        ("POST", "/tenants/{tenantId}/devices/{role}/webhook", ApiEvent::new("POST", "/tenants/acme/devices/primary/webhook").bearer(&tenant)),
        // acme's endpoints are manual (its version chain above stays as it is); `other` lets
        // wagate wire its device: on create, then again on request.
        ("POST", cfg_path, ApiEvent::new("POST", "/tenants/other/whatsapp-config").bearer(&other).json(&wired_cfg)),
        ("POST", "/tenants/{tenantId}/devices/{role}/webhook", ApiEvent::new("POST", "/tenants/other/devices/primary/webhook").bearer(&other)),
        ("POST", "/tenants/{tenantId}/devices/{role}/webhook", ApiEvent::new("POST", "/tenants/acme/devices/primary/webhook").bearer(&other)),
        ("GET", "/tenants/{tenantId}/messages/{idempotencyKey}", ApiEvent::new("GET", "/tenants/acme/messages/k1").bearer(&tenant)),
        ("GET", "/tenants/{tenantId}/messages/{idempotencyKey}", ApiEvent::new("GET", "/tenants/acme/messages/k2").bearer(&tenant)),
        ("GET", "/tenants/{tenantId}/history", ApiEvent::new("GET", "/tenants/acme/history").bearer(&tenant)),
        ("GET", "/tenants/{tenantId}/history", ApiEvent::new("GET", "/tenants/acme/history").query("hours=25").bearer(&tenant)),
        ("GET", "/tenants/{tenantId}/history", ApiEvent::new("GET", "/tenants/acme/history").bearer(&other)),
        ("GET", "/tenants/{tenantId}/history", ApiEvent::new("GET", "/tenants/nope/history").bearer(&admin)),
        ("GET", "/admin/failovers", ApiEvent::new("GET", "/admin/failovers").bearer(&admin)),
        ("GET", "/admin/failovers", ApiEvent::new("GET", "/admin/failovers").query("hours=0").bearer(&admin)),
        ("GET", "/admin/failovers", ApiEvent::new("GET", "/admin/failovers").bearer(&tenant)),
        ("GET", "/dashboard", ApiEvent::new("GET", "/dashboard")),
        ("GET", "/admin/endpoints", ApiEvent::new("GET", "/admin/endpoints").bearer(&admin)),
        ("GET", "/admin/endpoints", ApiEvent::new("GET", "/admin/endpoints").bearer(&tenant)),
        ("GET", "/admin/export", ApiEvent::new("GET", "/admin/export").bearer(&admin)),
        ("GET", "/admin/export", ApiEvent::new("GET", "/admin/export").bearer(&tenant)),
        ("POST", "/admin/import", ApiEvent::new("POST", "/admin/import").bearer(&admin).json(&json!({"format": "x"}))),
        // Registry, placement and migration (fleet.rs has the behaviour; these check shapes).
        ("POST", "/admin/servers", ApiEvent::new("POST", "/admin/servers").bearer(&admin).json(&json!({"serverId": "sa", "baseUrl": a.base_url(), "provider": "gowa", "region": "eu-west-1", "capacity": 10}))),
        ("POST", "/admin/servers", ApiEvent::new("POST", "/admin/servers").bearer(&admin).json(&json!({"serverId": "sa", "baseUrl": a.base_url(), "provider": "gowa", "region": "eu-west-1", "capacity": 10}))),
        ("POST", "/admin/servers", ApiEvent::new("POST", "/admin/servers").bearer(&admin).json(&json!({"serverId": "sx", "baseUrl": "http://10.0.0.1", "provider": "gowa", "region": "eu-west-1", "capacity": 10}))),
        ("POST", "/admin/servers", ApiEvent::new("POST", "/admin/servers").bearer(&admin).json(&json!({"serverId": "sb", "baseUrl": b.base_url(), "provider": "gowa", "region": "eu-west-1", "capacity": 10}))),
        ("POST", "/admin/servers", ApiEvent::new("POST", "/admin/servers").bearer(&admin).json(&json!({"serverId": "sc", "baseUrl": "http://127.0.0.1:9", "provider": "gowa", "region": "eu-west-1", "capacity": 10}))),
        ("POST", "/admin/servers", ApiEvent::new("POST", "/admin/servers").bearer(&tenant).json(&json!({}))),
        ("GET", "/admin/servers", ApiEvent::new("GET", "/admin/servers").bearer(&admin)),
        ("GET", "/admin/servers", ApiEvent::new("GET", "/admin/servers").bearer(&tenant)),
        ("PUT", "/admin/servers/{serverId}", ApiEvent::new("PUT", "/admin/servers/sb").bearer(&admin).json(&json!({"capacity": 5, "version": 1}))),
        ("PUT", "/admin/servers/{serverId}", ApiEvent::new("PUT", "/admin/servers/sb").bearer(&admin).json(&json!({"capacity": 5, "version": 1}))),
        ("PUT", "/admin/servers/{serverId}", ApiEvent::new("PUT", "/admin/servers/sb").bearer(&admin).json(&json!({"capacity": 5}))),
        ("PUT", "/admin/servers/{serverId}", ApiEvent::new("PUT", "/admin/servers/sb").bearer(&admin).json(&json!({"capacity": 0, "version": 2}))),
        ("PUT", "/admin/servers/{serverId}", ApiEvent::new("PUT", "/admin/servers/ghost").bearer(&admin).json(&json!({"capacity": 5, "version": 1}))),
        ("PUT", "/admin/servers/{serverId}", ApiEvent::new("PUT", "/admin/servers/sb").bearer(&tenant).json(&json!({"capacity": 5, "version": 2}))),
        ("POST", "/admin/placement", ApiEvent::new("POST", "/admin/placement").bearer(&admin).json(&json!({"region": "eu-west-1"}))),
        ("POST", "/admin/placement", ApiEvent::new("POST", "/admin/placement").bearer(&admin).json(&json!({"region": "ap-south-1"}))),
        ("POST", "/admin/placement", ApiEvent::new("POST", "/admin/placement").bearer(&admin).json(&json!({"region": "EU"}))),
        ("POST", "/admin/placement", ApiEvent::new("POST", "/admin/placement").bearer(&tenant).json(&json!({"region": "eu-west-1"}))),
        ("POST", "/admin/migrations", ApiEvent::new("POST", "/admin/migrations").bearer(&admin).json(&json!({"jobId": "j1", "from": "sa", "to": "sb", "dryRun": true}))),
        ("POST", "/admin/migrations", ApiEvent::new("POST", "/admin/migrations").bearer(&admin).json(&json!({"jobId": "j1", "from": "sa", "to": "sb"}))),
        ("POST", "/admin/migrations", ApiEvent::new("POST", "/admin/migrations").bearer(&admin).json(&json!({"jobId": "j1", "from": "sa", "to": "sc"}))),
        ("POST", "/admin/migrations", ApiEvent::new("POST", "/admin/migrations").bearer(&admin).json(&json!({"jobId": "j2", "from": "sa", "to": "sc"}))),
        ("POST", "/admin/migrations", ApiEvent::new("POST", "/admin/migrations").bearer(&admin).json(&json!({"jobId": "j3", "from": "sa", "to": "ghost"}))),
        ("POST", "/admin/migrations", ApiEvent::new("POST", "/admin/migrations").bearer(&admin).json(&json!({"jobId": "j3", "from": "sa", "to": "sa"}))),
        ("POST", "/admin/migrations", ApiEvent::new("POST", "/admin/migrations").bearer(&tenant).json(&json!({"jobId": "j3", "from": "sa", "to": "sb"}))),
        ("GET", "/admin/migrations/{jobId}", ApiEvent::new("GET", "/admin/migrations/j1").bearer(&admin)),
        ("GET", "/admin/migrations/{jobId}", ApiEvent::new("GET", "/admin/migrations/ghost").bearer(&admin)),
        ("GET", "/admin/migrations/{jobId}", ApiEvent::new("GET", "/admin/migrations/j1").bearer(&tenant)),
        ("DELETE", "/admin/servers/{serverId}", ApiEvent::new("DELETE", "/admin/servers/sa").bearer(&admin)),
        ("DELETE", "/admin/servers/{serverId}", ApiEvent::new("DELETE", "/admin/servers/sc").bearer(&admin)),
        ("DELETE", "/admin/servers/{serverId}", ApiEvent::new("DELETE", "/admin/servers/ghost").bearer(&admin)),
        ("DELETE", "/admin/servers/{serverId}", ApiEvent::new("DELETE", "/admin/servers/sb").bearer(&tenant)),
    ];
    // A delivery record for the message route.
    api.stack.put_delivery("acme", "k1", "sent").await;
    let mut seen = std::collections::BTreeSet::new();
    let mut export = Value::Null;
    for (method, template, ev) in calls.drain(..) {
        let r = api.call(ev).await;
        check(&doc, method, template, &r);
        if template == "/admin/export" && r.status == StatusCode::OK {
            export = r.json();
        }
        seen.insert((method, template, r.status.as_u16()));
    }
    // Import (dry run, with conflicts) and delete last.
    let r = api
        .call(
            ApiEvent::new("POST", "/admin/import")
                .query("dryRun=true")
                .bearer(&admin)
                .json(&export),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    check(&doc, "POST", "/admin/import", &r);
    let r = api
        .call(ApiEvent::new("DELETE", "/tenants/acme/whatsapp-config").bearer(&admin))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    check(&doc, "DELETE", cfg_path, &r);
    // The scenario reached the statuses it was written for (so the checks above ran on
    // success bodies, not only on errors).
    for want in [
        ("POST", cfg_path, 201),
        ("PUT", cfg_path, 200),
        ("POST", "/tenants/{tenantId}/whatsapp-config/test", 200),
        (
            "POST",
            "/tenants/{tenantId}/whatsapp-config/rotate-credential",
            200,
        ),
        (
            "POST",
            "/tenants/{tenantId}/whatsapp-config/rotate-webhook-secret",
            200,
        ),
        ("POST", "/tenants/{tenantId}/whatsapp-config/switch", 200),
        ("POST", "/tenants/{tenantId}/whatsapp-config/switch", 422),
        ("GET", "/tenants/{tenantId}/audit", 200),
        ("GET", "/tenants/{tenantId}/status", 200),
        ("GET", "/tenants/{tenantId}/messages/{idempotencyKey}", 200),
        ("GET", "/admin/endpoints", 200),
        ("GET", "/admin/export", 200),
        ("POST", "/admin/servers", 201),
        ("POST", "/admin/servers", 409),
        ("GET", "/admin/servers", 200),
        ("PUT", "/admin/servers/{serverId}", 200),
        ("PUT", "/admin/servers/{serverId}", 409),
        ("PUT", "/admin/servers/{serverId}", 428),
        ("DELETE", "/admin/servers/{serverId}", 204),
        ("DELETE", "/admin/servers/{serverId}", 409),
        ("POST", "/admin/placement", 200),
        ("POST", "/admin/placement", 409),
        ("POST", "/admin/migrations", 200),
        ("POST", "/admin/migrations", 409),
        ("POST", "/admin/migrations", 422),
        ("GET", "/admin/migrations/{jobId}", 200),
        ("GET", "/tenants/{tenantId}/history", 200),
        ("GET", "/tenants/{tenantId}/history", 400),
        ("GET", "/tenants/{tenantId}/history", 403),
        ("GET", "/tenants/{tenantId}/history", 404),
        ("GET", "/admin/failovers", 200),
        ("GET", "/admin/failovers", 400),
        ("GET", "/admin/failovers", 403),
        ("GET", "/dashboard", 200),
        ("GET", "/tenants/{tenantId}/devices/{role}", 200),
        ("GET", "/tenants/{tenantId}/devices/{role}", 400),
        ("POST", "/tenants/{tenantId}/devices/{role}", 200),
        ("POST", "/tenants/{tenantId}/devices/{role}/qr", 409),
        ("POST", "/tenants/{tenantId}/devices/{role}/qr", 200),
        (
            "POST",
            "/tenants/{tenantId}/devices/{role}/pairing-code",
            400,
        ),
        (
            "POST",
            "/tenants/{tenantId}/devices/{role}/pairing-code",
            200,
        ),
        ("POST", "/tenants/{tenantId}/devices/{role}/logout", 200),
        ("POST", "/tenants/{tenantId}/devices/{role}/reconnect", 200),
        ("GET", "/tenants/{tenantId}/devices/{role}/webhook", 200),
        ("POST", "/tenants/{tenantId}/devices/{role}/webhook", 200),
        ("POST", "/tenants/{tenantId}/devices/{role}/webhook", 403),
    ] {
        assert!(seen.contains(&want), "{want:?} not reached: {seen:?}");
    }
}

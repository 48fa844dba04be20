//! `/openapi.json` states every constraint the server enforces, from the
//! constants that enforce them, on every route (so a new route that takes
//! an id, a page or a document states them too).

use reqwest::{Method, StatusCode};
use serde_json::Value;
use shadowbox_core::event::{EVENT_ID_PATTERN, MAX_EVENT_ID_LEN};
use shadowbox_core::id::{ID_PATTERN, MAX_ID_LEN};
use shadowbox_core::idempotency::{KEY_PATTERN, MAX_KEY_LEN};

use crate::helpers::{TestApp, expect_json, spawn_with};

async fn document(app: &TestApp) -> Value {
    expect_json(
        app.send(Method::GET, "/openapi.json", None, None).await,
        StatusCode::OK,
    )
    .await
}

/// Every operation with its method and path.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    all
}

#[tokio::test]
async fn every_parameter_states_its_form() {
    let app = spawn_with(|_| {}).await;
    let doc = document(&app).await;
    let mut seen = Vec::new();
    for (method, path, operation) in operations(&doc) {
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for parameter in parameters {
            let name = parameter["name"].as_str().unwrap();
            let schema = &parameter["schema"];
            let at = format!("{method} {path} {name}: {schema}");
            match name {
                "tenant_id" | "device_id" => {
                    assert_eq!(schema["pattern"], ID_PATTERN, "{at}");
                    assert_eq!(schema["maxLength"], MAX_ID_LEN, "{at}");
                    assert_eq!(schema["minLength"], 1, "{at}");
                }
                "limit" => {
                    assert_eq!(schema["minimum"], 1, "{at}");
                    assert_eq!(schema["maximum"], 1000, "{at}");
                }
                "cursor" => {
                    let pattern = schema["pattern"].as_str().expect(&at);
                    assert!(pattern.starts_with('^') && pattern.ends_with('$'), "{at}");
                    assert!(schema["maxLength"].is_u64(), "{at}");
                }
                "If-Match" => {
                    let forms = schema["anyOf"].as_array().expect(&at);
                    assert_eq!(forms[0]["enum"][0], "*", "{at}");
                    assert!(forms[1]["pattern"].is_string(), "{at}");
                }
                "Idempotency-Key" => {
                    assert_eq!(schema["pattern"], KEY_PATTERN, "{at}");
                    assert_eq!(schema["maxLength"], MAX_KEY_LEN, "{at}");
                }
                "tag" => {
                    assert_eq!(schema["maxItems"], 32, "{at}");
                    assert!(schema["items"]["pattern"].is_string(), "{at}");
                }
                "older_than" => assert!(schema["pattern"].is_string(), "{at}"),
                "rollout_id" => assert_eq!(schema["type"], "integer", "{at}"),
                "Last-Event-ID" => {
                    assert_eq!(schema["pattern"], EVENT_ID_PATTERN, "{at}");
                    assert_eq!(schema["maxLength"], MAX_EVENT_ID_LEN, "{at}");
                }
                "id" | "status" | "in_sync" => {}
                other => panic!(
                    "{at}: a parameter this test does not know ({other}): state its constraints and check them here"
                ),
            }
            seen.push(name.to_owned());
        }
    }
    for name in [
        "tenant_id",
        "device_id",
        "limit",
        "cursor",
        "If-Match",
        "Idempotency-Key",
    ] {
        assert!(seen.iter().any(|s| s == name), "{name} is on no route");
    }
    let device_id = &doc["components"]["schemas"]["RegisterDevice"]["properties"]["device_id"];
    assert_eq!(device_id["pattern"], ID_PATTERN);
    assert_eq!(device_id["maxLength"], MAX_ID_LEN);
}

#[tokio::test]
async fn request_bodies_state_the_configured_limits() {
    let app = spawn_with(|settings| {
        settings.limits.max_bytes = 1234;
        settings.limits.max_depth = 7;
        settings.max_body_bytes = 2468;
    })
    .await;
    let doc = document(&app).await;
    let mut bodies = 0;
    for (method, path, operation) in operations(&doc) {
        let Some(description) = operation["requestBody"]["description"].as_str() else {
            continue;
        };
        bodies += 1;
        for limit in ["2468 bytes", "1234 bytes", "7 levels deep", "NUL"] {
            assert!(
                description.contains(limit),
                "{method} {path}: {description}"
            );
        }
    }
    assert!(bodies >= 3, "{bodies}");
    // A desired document's strings and keys hold no NUL.
    let value = &doc["components"]["schemas"]["DocumentValue"];
    let no_nul = regex::Regex::new(value["pattern"].as_str().unwrap()).unwrap();
    assert!(
        no_nul.is_match("any text") && !no_nul.is_match("a\u{0}b"),
        "{value}"
    );
    assert_eq!(value["items"]["$ref"], "#/components/schemas/DocumentValue");
    assert_eq!(value["propertyNames"]["pattern"], value["pattern"]);
    let document = &doc["paths"]["/v1/tenants/{tenant_id}/devices/{device_id}/desired"]["put"]["requestBody"]
        ["content"]["application/json"]["schema"];
    assert_eq!(
        document["$ref"], "#/components/schemas/Document",
        "{document}"
    );
}

//! Bearer auth: 401 without a valid token, tenant keys confined to their
//! tenant (404, learning nothing), admin routes for the admin only, and
//! the key's secret stored nowhere; a cached key checks its secret and
//! lives at most the cache's TTL.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;

use crate::helpers::{ADMIN, expect_json, expect_problem, spawn_app, spawn_with};

#[tokio::test]
async fn missing_or_wrong_tokens_answer_401() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let path = "/v1/tenants/acme/devices";
    let none = app.send(Method::GET, path, None, None).await;
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"shadowbox\""
    );
    expect_problem(none, StatusCode::UNAUTHORIZED).await;
    let tampered = format!("{}x", &key[..key.len() - 1]);
    let wrong_id = key.replacen(&key[4..8], "0000", 1);
    for token in [
        "nope",
        "test-admin-tokenx",
        "sbk_",
        tampered.as_str(),
        wrong_id.as_str(),
    ] {
        let response = app.send(Method::GET, path, Some(token), None).await;
        expect_problem(response, StatusCode::UNAUTHORIZED).await;
    }
    let basic = app
        .request(Method::GET, path, None)
        .header("authorization", format!("Basic {key}"))
        .send()
        .await
        .unwrap();
    expect_problem(basic, StatusCode::UNAUTHORIZED).await;
    // Auth comes before anything else, even a malformed path.
    let unauthenticated_bad_path = app
        .send(Method::GET, "/v1/tenants/a+b/devices", None, None)
        .await;
    expect_problem(unauthenticated_bad_path, StatusCode::UNAUTHORIZED).await;
    let ok = app.send(Method::GET, path, Some(&key), None).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_key_cannot_see_other_tenants() {
    let app = spawn_app().await;
    let acme = app.tenant_with_key("acme").await;
    let globex = app.tenant_with_key("globex").await;
    app.register(&globex, "globex", "secret-device", Some(json!({"a": 1})))
        .await;
    let requests = |tenant: &str| {
        [
            (Method::GET, format!("/v1/tenants/{tenant}/devices"), None),
            (
                Method::POST,
                format!("/v1/tenants/{tenant}/devices"),
                Some(json!({"device_id": "x"})),
            ),
            (
                Method::GET,
                format!("/v1/tenants/{tenant}/devices/secret-device"),
                None,
            ),
            (
                Method::PATCH,
                format!("/v1/tenants/{tenant}/devices/secret-device/desired"),
                Some(json!({"a": 2})),
            ),
            (
                Method::PUT,
                format!("/v1/tenants/{tenant}/devices/secret-device/desired"),
                Some(json!({"a": 2})),
            ),
            (
                Method::POST,
                format!("/v1/tenants/{tenant}/devices/secret-device/decommission"),
                None,
            ),
            (
                Method::GET,
                format!("/v1/tenants/{tenant}/devices/secret-device/deliveries"),
                None,
            ),
            (Method::GET, format!("/v1/tenants/{tenant}/outbox"), None),
            (
                Method::POST,
                format!("/v1/tenants/{tenant}/outbox/1/retry"),
                None,
            ),
        ]
    };
    // An existing tenant and a missing one answer exactly alike.
    for tenant in ["globex", "no-such-tenant"] {
        for (method, path, body) in requests(tenant) {
            let response = app.send(method, &path, Some(&acme), body).await;
            let problem = expect_problem(response, StatusCode::NOT_FOUND).await;
            assert_eq!(problem["detail"], "tenant not found", "{path}");
        }
    }
    // Nothing changed at globex.
    let device = app
        .send(
            Method::GET,
            "/v1/tenants/globex/devices/secret-device",
            Some(&globex),
            None,
        )
        .await;
    let device = expect_json(device, StatusCode::OK).await;
    assert_eq!(
        (device["desired"].clone(), device["status"].clone()),
        (json!({"a": 1}), json!("active"))
    );
    let listing = app
        .send(
            Method::GET,
            "/v1/tenants/globex/devices",
            Some(&globex),
            None,
        )
        .await;
    assert_eq!(
        expect_json(listing, StatusCode::OK).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// The scope is checked before the rest of the request is read: another
/// tenant's paths answer 404 whatever else is wrong with the request, so
/// not even the validation of a path, query or body tells a key anything.
#[tokio::test]
async fn another_tenants_paths_answer_404_before_anything_else() {
    let app = spawn_app().await;
    let acme = app.tenant_with_key("acme").await;
    app.tenant_with_key("globex").await;
    let malformed = [
        app.request(Method::GET, "/v1/tenants/globex/devices/a+b", Some(&acme)),
        app.request(
            Method::POST,
            "/v1/tenants/globex/outbox/abc/retry",
            Some(&acme),
        ),
        app.request(
            Method::GET,
            "/v1/tenants/globex/devices?limit=0&status=bogus",
            Some(&acme),
        ),
        app.request(Method::POST, "/v1/tenants/globex/devices", Some(&acme))
            .header("content-type", "text/plain")
            .body("{"),
        app.request(
            Method::PATCH,
            "/v1/tenants/globex/devices/d1/desired",
            Some(&acme),
        )
        .header("content-type", "application/json")
        .body("[1]"),
    ];
    for request in malformed {
        let response = request.send().await.unwrap();
        let problem = expect_problem(response, StatusCode::NOT_FOUND).await;
        assert_eq!(problem["detail"], "tenant not found");
    }
    // Its own tenant's malformed requests are refused for what they are.
    let own = app
        .send(
            Method::GET,
            "/v1/tenants/acme/devices/a+b",
            Some(&acme),
            None,
        )
        .await;
    expect_problem(own, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn admin_routes_need_the_admin_token() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    for (method, path) in [
        (Method::PUT, "/v1/tenants/acme"),
        (Method::PUT, "/v1/tenants/other"),
        (Method::POST, "/v1/tenants/acme/api-keys"),
    ] {
        let response = app.send(method, path, Some(&key), None).await;
        expect_problem(response, StatusCode::FORBIDDEN).await;
    }
    // The admin reaches every tenant's routes.
    let listing = app
        .send(Method::GET, "/v1/tenants/acme/devices", Some(ADMIN), None)
        .await;
    assert_eq!(listing.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_an_admin_token_admin_routes_are_disabled() {
    let app = spawn_with(|s| s.admin_token = None).await;
    let response = app
        .send(Method::PUT, "/v1/tenants/acme", Some(ADMIN), None)
        .await;
    expect_problem(response, StatusCode::UNAUTHORIZED).await;
    // The CLI's way still works, and its key is accepted.
    let tenant = shadowbox_core::TenantId::parse("acme").unwrap();
    shadowbox_db::tenants::create_tenant(&app.db.pool, &tenant)
        .await
        .unwrap();
    let key = shadowbox_db::api_keys::create_api_key(&app.db.pool, &tenant)
        .await
        .unwrap();
    let listing = app
        .send(
            Method::GET,
            "/v1/tenants/acme/devices",
            Some(&key.secret),
            None,
        )
        .await;
    assert_eq!(listing.status(), StatusCode::OK);
    let forbidden = app
        .send(Method::PUT, "/v1/tenants/acme", Some(&key.secret), None)
        .await;
    expect_problem(forbidden, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn the_key_secret_is_stored_in_no_table() {
    let app = spawn_app().await;
    let via_route = app.tenant_with_key("acme").await;
    let tenant = shadowbox_core::TenantId::parse("acme").unwrap();
    let via_cli = shadowbox_db::api_keys::create_api_key(&app.db.pool, &tenant)
        .await
        .unwrap();
    app.register(&via_route, "acme", "d1", Some(json!({"a": 1})))
        .await;
    let mut needles = Vec::new();
    for secret in [via_route.as_str(), via_cli.secret.as_str()] {
        // `sbk_<32 hex id>_<random>`: the random part may hold `_` itself.
        let random = &secret["sbk_".len() + 32 + 1..];
        needles.push(random.to_owned());
        needles.push(secret.to_owned());
    }
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = 'public'
           AND data_type IN ('text', 'character varying', 'bytea', 'jsonb', 'json')",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    let tables: std::collections::BTreeSet<_> = columns.iter().map(|c| c.0.as_str()).collect();
    assert!(
        tables.contains("api_keys") && tables.contains("outbox"),
        "{tables:?}"
    );
    let mut cells = 0;
    for (table, column, data_type) in &columns {
        // Text-like columns as text, bytea as its raw bytes.
        let cast = if data_type == "bytea" { "" } else { "::text" };
        #[expect(
            clippy::disallowed_methods,
            reason = "every table and column, named by information_schema: identifiers cannot be bound"
        )]
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT \"{column}\"{cast} AS v FROM \"{table}\""
        )))
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
        for row in rows {
            let value: Option<Vec<u8>> = if data_type == "bytea" {
                row.try_get("v").unwrap()
            } else {
                row.try_get::<Option<String>, _>("v")
                    .unwrap()
                    .map(String::into_bytes)
            };
            let Some(value) = value else { continue };
            cells += 1;
            for needle in &needles {
                let found = value.windows(needle.len()).any(|w| w == needle.as_bytes());
                assert!(!found, "{table}.{column} holds a key secret");
            }
        }
    }
    assert!(cells > 5, "the dump read the tables ({cells} cells)");
}

#[tokio::test]
async fn a_cached_key_still_checks_its_secret_and_lives_at_most_the_ttl() {
    let path = "/v1/tenants/acme/devices";
    let forget_keys = |app: &crate::helpers::TestApp| {
        let pool = app.db.pool.clone();
        async move {
            sqlx::query("DELETE FROM api_keys")
                .execute(&pool)
                .await
                .unwrap();
        }
    };

    let cached = spawn_with(|s| s.key_cache_ttl = Duration::from_secs(600)).await;
    let key = cached.tenant_with_key("acme").await;
    let ok = cached.send(Method::GET, path, Some(&key), None).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let tampered = format!("{}x", &key[..key.len() - 1]);
    let wrong = cached.send(Method::GET, path, Some(&tampered), None).await;
    expect_problem(wrong, StatusCode::UNAUTHORIZED).await;
    forget_keys(&cached).await;
    let still = cached.send(Method::GET, path, Some(&key), None).await;
    assert_eq!(
        still.status(),
        StatusCode::OK,
        "a key deleted in SQL works for the TTL"
    );

    let uncached = spawn_with(|s| s.key_cache_ttl = Duration::ZERO).await;
    let key = uncached.tenant_with_key("acme").await;
    let ok = uncached.send(Method::GET, path, Some(&key), None).await;
    assert_eq!(ok.status(), StatusCode::OK);
    forget_keys(&uncached).await;
    let gone = uncached.send(Method::GET, path, Some(&key), None).await;
    expect_problem(gone, StatusCode::UNAUTHORIZED).await;
}

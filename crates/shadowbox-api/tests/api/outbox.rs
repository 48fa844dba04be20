//! The tenant's outbox: listing by status with pages, and reviving dead
//! rows.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN, TestApp, expect_json, expect_problem, spawn_app};

/// Marks row `id` dead, as the relay does after its last attempt.
async fn kill_row(app: &TestApp, id: i64) {
    sqlx::query(
        "UPDATE outbox SET status = 'dead', attempts = 10, last_error = 'refused' WHERE id = $1",
    )
    .bind(id)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn outbox_lists_newest_first_by_status_and_page() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    for i in 0..5 {
        app.register(&key, "acme", &format!("d{i}"), Some(json!({"i": i})))
            .await;
    }
    let all = expect_json(
        app.send(Method::GET, "/v1/tenants/acme/outbox", Some(&key), None)
            .await,
        StatusCode::OK,
    )
    .await;
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 5);
    assert!(
        all_ids.windows(2).all(|w| w[0] > w[1]),
        "newest first: {all_ids:?}"
    );
    assert_eq!(all["next_cursor"], Value::Null);
    kill_row(&app, all_ids[1]).await;

    let mut paged = Vec::new();
    let mut path = "/v1/tenants/acme/outbox?limit=2".to_owned();
    loop {
        let page = expect_json(
            app.send(Method::GET, &path, Some(&key), None).await,
            StatusCode::OK,
        )
        .await;
        paged.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/tenants/acme/outbox?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, all_ids);

    let dead = expect_json(
        app.send(
            Method::GET,
            "/v1/tenants/acme/outbox?status=dead",
            Some(&key),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&dead), [all_ids[1]]);
    assert_eq!(dead["items"][0]["last_error"], "refused");
    let pending = expect_json(
        app.send(
            Method::GET,
            "/v1/tenants/acme/outbox?status=pending",
            Some(&key),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&pending).len(), 4);
    let missing_tenant = app
        .send(Method::GET, "/v1/tenants/nope/outbox", Some(ADMIN), None)
        .await;
    expect_problem(missing_tenant, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn retry_revives_dead_rows_only() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    app.tenant_with_key("globex").await;
    app.register(&key, "acme", "d1", Some(json!({"a": 1})))
        .await;
    let row = expect_json(
        app.send(Method::GET, "/v1/tenants/acme/outbox", Some(&key), None)
            .await,
        StatusCode::OK,
    )
    .await["items"][0]["id"]
        .as_i64()
        .unwrap();
    let path = format!("/v1/tenants/acme/outbox/{row}/retry");
    let not_dead = app.send(Method::POST, &path, Some(&key), None).await;
    let problem = expect_problem(not_dead, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "urn:shadowbox:problem:not-dead");

    kill_row(&app, row).await;
    // The admin, through another tenant's path, does not find it.
    let elsewhere = app
        .send(
            Method::POST,
            &format!("/v1/tenants/globex/outbox/{row}/retry"),
            Some(ADMIN),
            None,
        )
        .await;
    expect_problem(elsewhere, StatusCode::NOT_FOUND).await;
    let revived = expect_json(
        app.send(Method::POST, &path, Some(&key), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            revived["id"].as_i64(),
            revived["status"].as_str(),
            revived["attempts"].as_i64()
        ),
        (Some(row), Some("pending"), Some(0))
    );
    let missing = app
        .send(
            Method::POST,
            "/v1/tenants/acme/outbox/999999/retry",
            Some(&key),
            None,
        )
        .await;
    expect_problem(missing, StatusCode::NOT_FOUND).await;
}

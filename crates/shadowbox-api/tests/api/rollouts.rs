//! Rollouts through the API without a wave machine: creation fixes the
//! set and cuts the waves, bad input answers 4xx, transitions answer 409
//! where the contract forbids them, lists page newest first.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json, expect_problem, spawn_app};

async fn create(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.send(
        Method::POST,
        "/v1/tenants/acme/rollouts",
        Some(key),
        Some(body),
    )
    .await
}

/// A tenant `acme` with devices `d0`..`d9`; `d0`-`d4` tagged `site:berlin`,
/// `d9` decommissioned. Returns its key.
async fn fleet(app: &TestApp) -> String {
    let key = app.tenant_with_key("acme").await;
    for i in 0..10 {
        let site = if i < 5 { "berlin" } else { "paris" };
        expect_json(
            app.send(
                Method::POST,
                "/v1/tenants/acme/devices",
                Some(&key),
                Some(json!({"device_id": format!("d{i}"), "tags": {"site": site}})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    expect_json(
        app.send(
            Method::POST,
            "/v1/tenants/acme/devices/d9/decommission",
            Some(&key),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    key
}

#[tokio::test]
async fn creation_fixes_the_active_selected_devices_and_cuts_the_waves() {
    let app = spawn_app().await;
    let key = fleet(&app).await;
    let response = create(
        &app,
        &key,
        json!({"selector": {"tags": {"site": "berlin"}}, "patch": {"fw": "2"},
               "waves": [0.2, 0.5, 1.0], "min_converged": 0.9, "wave_timeout": "10m",
               "max_rejected": 0.1}),
    )
    .await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let rollout = expect_json(response, StatusCode::CREATED).await;
    assert_eq!(
        location,
        format!("/v1/tenants/acme/rollouts/{}", rollout["id"])
    );
    assert_eq!(rollout["status"], "running");
    assert_eq!(rollout["selected"], 5);
    assert_eq!(rollout["selector"], json!({"tags": {"site": "berlin"}}));
    assert_eq!(rollout["patch"], json!({"fw": "2"}));
    assert_eq!(rollout["wave_timeout"], "10m");
    assert_eq!(rollout["min_converged"], 0.9);
    assert_eq!(rollout["max_rejected"], 0.1);
    assert_eq!(rollout["current_wave"], 1);
    assert_eq!(rollout["abort_reason"], Value::Null);
    let sizes: Vec<i64> = rollout["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["size"].as_i64().unwrap())
        .collect();
    assert_eq!(sizes, [1, 2, 2]);
    assert_eq!(
        rollout["skipped_by_reason"],
        json!({"unchanged": 0, "decommissioned": 0, "limits": 0})
    );
    // Devices tagged later are not in it.
    let all = expect_json(
        create(
            &app,
            &key,
            json!({"selector": {"all": true}, "patch": {"fw": "2"}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        all["selected"], 9,
        "the decommissioned device is not selected"
    );
    assert_eq!(all["waves"][0]["fraction"], 1.0);
    let ids = expect_json(
        create(
            &app,
            &key,
            json!({"selector": {"device_ids": ["d1", "d1", "d9", "nope"]}, "patch": {"fw": "2"}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        ids["selected"], 1,
        "duplicates once, inactive and unknown devices not at all"
    );

    let read = expect_json(
        app.send(
            Method::GET,
            &format!("/v1/tenants/acme/rollouts/{}", rollout["id"]),
            Some(&key),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, rollout);
    // Another tenant sees nothing of it.
    let other = app.tenant_with_key("other").await;
    let foreign = app
        .send(
            Method::GET,
            &format!("/v1/tenants/acme/rollouts/{}", rollout["id"]),
            Some(&other),
            None,
        )
        .await;
    expect_problem(foreign, StatusCode::NOT_FOUND).await;
    let missing = app
        .send(
            Method::GET,
            "/v1/tenants/other/rollouts/1",
            Some(&other),
            None,
        )
        .await;
    expect_problem(missing, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn bad_rollouts_answer_4xx() {
    let app = spawn_app().await;
    let key = fleet(&app).await;
    let too_many: Vec<String> = (0..10_001).map(|i| format!("x{i}")).collect();
    for body in [
        json!({"selector": {}, "patch": {}}),
        json!({"selector": {"all": true, "tags": {"a": "b"}}, "patch": {}}),
        json!({"selector": {"all": false}, "patch": {}}),
        json!({"selector": {"device_ids": []}, "patch": {}}),
        json!({"selector": {"device_ids": too_many}, "patch": {}}),
        json!({"selector": {"device_ids": ["bad/id"]}, "patch": {}}),
        json!({"selector": {"tags": {}}, "patch": {}}),
        json!({"selector": {"tags": {"Site": "x"}}, "patch": {}}),
        json!({"selector": {"all": true}, "patch": [1]}),
        json!({"selector": {"all": true}, "patch": {"a": "\u{0}"}}),
        json!({"selector": {"all": true}, "patch": {}, "waves": []}),
        json!({"selector": {"all": true}, "patch": {}, "waves": [0.5]}),
        json!({"selector": {"all": true}, "patch": {}, "waves": [0.5, 0.5, 1.0]}),
        json!({"selector": {"all": true}, "patch": {}, "waves": [0.0, 1.0]}),
        json!({"selector": {"all": true}, "patch": {}, "waves": [0.5, 1.5]}),
        json!({"selector": {"all": true}, "patch": {}, "min_converged": 1.5}),
        json!({"selector": {"all": true}, "patch": {}, "max_rejected": -0.1}),
        json!({"selector": {"all": true}, "patch": {}, "wave_timeout": "soon"}),
        json!({"selector": {"all": true}, "patch": {}, "wave_timeout": "0s"}),
        json!({"selector": {"all": true}, "patch": {}, "surprise": 1}),
        json!({"patch": {}}),
    ] {
        let response = create(&app, &key, body.clone()).await;
        let status = response.status();
        let problem = expect_problem(response, status).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
    }
    for matches_nothing in [
        json!({"selector": {"tags": {"site": "rome"}}, "patch": {"a": 1}}),
        json!({"selector": {"device_ids": ["nope"]}, "patch": {"a": 1}}),
    ] {
        let response = create(&app, &key, matches_nothing).await;
        expect_problem(response, StatusCode::CONFLICT).await;
    }
    let nothing = app
        .send(Method::GET, "/v1/tenants/acme/rollouts", Some(&key), None)
        .await;
    assert_eq!(
        expect_json(nothing, StatusCode::OK).await["items"],
        json!([]),
        "no half-made rollout is left behind"
    );
}

#[tokio::test]
async fn transitions_follow_the_contract_and_lists_page_newest_first() {
    let app = spawn_app().await;
    let key = fleet(&app).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let rollout = expect_json(
            create(
                &app,
                &key,
                json!({"selector": {"all": true}, "patch": {"fw": "2"}}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        ids.push(rollout["id"].as_i64().unwrap());
    }
    let steer = |id: i64, action: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            app.send(
                Method::POST,
                &format!("/v1/tenants/acme/rollouts/{id}/{action}"),
                Some(&key),
                None,
            )
            .await
        }
    };
    let id = ids[0];
    expect_problem(steer(id, "resume").await, StatusCode::CONFLICT).await;
    expect_problem(steer(id, "rollback").await, StatusCode::CONFLICT).await;
    assert_eq!(
        expect_json(steer(id, "pause").await, StatusCode::OK).await["status"],
        "paused"
    );
    expect_problem(steer(id, "pause").await, StatusCode::CONFLICT).await;
    assert_eq!(
        expect_json(steer(id, "resume").await, StatusCode::OK).await["status"],
        "running"
    );
    assert_eq!(
        expect_json(steer(id, "cancel").await, StatusCode::OK).await["status"],
        "cancelled"
    );
    for action in ["pause", "resume", "cancel"] {
        expect_problem(steer(id, action).await, StatusCode::CONFLICT).await;
    }
    let rolled_back = expect_json(steer(id, "rollback").await, StatusCode::OK).await;
    assert_eq!(rolled_back["status"], "rolled_back");
    assert_eq!(rolled_back["rollback"]["restored"], 0);
    expect_problem(steer(id, "rollback").await, StatusCode::CONFLICT).await;
    expect_problem(steer(999_999, "pause").await, StatusCode::NOT_FOUND).await;

    let page = expect_json(
        app.send(
            Method::GET,
            "/v1/tenants/acme/rollouts?limit=2",
            Some(&key),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let listed: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [ids[2], ids[1]]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = expect_json(
        app.send(
            Method::GET,
            &format!("/v1/tenants/acme/rollouts?limit=2&cursor={cursor}"),
            Some(&key),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rest["items"][0]["id"], ids[0]);
    assert_eq!(rest["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_repeated_creation_with_its_idempotency_key_creates_one_rollout() {
    let app = spawn_app().await;
    let key = fleet(&app).await;
    let body = json!({"selector": {"all": true}, "patch": {"fw": "2"}});
    let send = |body: Value| {
        app.request(Method::POST, "/v1/tenants/acme/rollouts", Some(&key))
            .header("Idempotency-Key", "fw-2")
            .json(&body)
            .send()
    };
    let first = expect_json(send(body.clone()).await.unwrap(), StatusCode::CREATED).await;
    let again = send(body).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(expect_json(again, StatusCode::CREATED).await, first);
    let other = send(json!({"selector": {"all": true}, "patch": {"fw": "3"}}))
        .await
        .unwrap();
    expect_problem(other, StatusCode::UNPROCESSABLE_ENTITY).await;
    let list = expect_json(
        app.send(Method::GET, "/v1/tenants/acme/rollouts", Some(&key), None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_large_set_gets_planner_statistics_as_it_is_created() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let devices = shadowbox_db::rollouts::ANALYZE_SELECTED_AT;
    sqlx::query(
        "INSERT INTO device_state (tenant_id, device_id)
         SELECT 'acme', 'd' || i FROM generate_series(1, $1::bigint) AS i",
    )
    .bind(devices)
    .execute(&app.db.pool)
    .await
    .unwrap();
    expect_json(
        create(
            &app,
            &key,
            json!({"selector": {"all": true}, "patch": {"a": 1}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let known: f32 = sqlx::query_scalar(
        "SELECT reltuples FROM pg_class WHERE oid = 'rollout_devices'::regclass",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(
        known >= devices as f32,
        "the planner knows the set: {known} rows"
    );
}

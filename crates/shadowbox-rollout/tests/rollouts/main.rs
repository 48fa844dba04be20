//! Rollouts end to end: the API, the wave machine, a relay, an ingester,
//! a private Mosquitto and simulated devices, on a fresh database.

mod stack;

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shadowbox_testkit::mqtt::desired::version_of;
use shadowbox_testkit::mqtt::retained;
use shadowbox_testkit::{PATIENCE, eventually};

use crate::stack::{ROLLOUT_PATIENCE, Stack};

/// Waits until every device reports its desired version.
async fn wait_in_sync(stack: &Stack) {
    eventually(ROLLOUT_PATIENCE, "every device in sync", || async {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM device_state WHERE reported_version < desired_version",
        )
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();
        behind == 0
    })
    .await;
}

/// Asserts that the broker retains each device's current desired version.
async fn assert_retained_equals_database(stack: &Stack) {
    let expected: HashMap<String, i64> = stack
        .desired()
        .await
        .into_iter()
        .map(|(device, _, version)| {
            (
                format!("tenant/acme/device/{device}/shadow/desired"),
                version,
            )
        })
        .collect();
    eventually(PATIENCE, "retained equals the database", || async {
        let retained = retained(&stack.broker.url(), "tenant/acme/device/+/shadow/desired").await;
        let actual: HashMap<String, i64> = retained
            .iter()
            .map(|(topic, payload)| (topic.clone(), version_of(payload)))
            .collect();
        actual == expected
    })
    .await;
}

#[tokio::test]
async fn waves_wait_for_convergence_and_every_device_gets_the_patch_on_its_own_document() {
    let stack = Stack::start(1000).await;
    let _devices = stack.simulate(|_| {});
    wait_in_sync(&stack).await;
    let _machine = stack.machine(97);
    let created = stack
        .create(json!({
            "selector": {"all": true},
            "patch": {"firmware": "2.4.1"},
            "waves": [0.01, 0.1, 1.0],
        }))
        .await;
    assert_eq!(created["status"], "running");
    assert_eq!(created["selected"], 1000);
    let sizes: Vec<&Value> = created["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["size"])
        .collect();
    assert_eq!(sizes, [&json!(10), &json!(90), &json!(900)]);
    let id = created["id"].as_i64().unwrap();
    let done = stack.wait_status(id, "completed").await;

    let waves = done["waves"].as_array().unwrap();
    for pair in waves.windows(2) {
        // A wave starts only after the one before met its gate.
        let (before, next) = (&pair[0], &pair[1]);
        assert!(
            next["started_at"].as_str().unwrap() >= before["finished_at"].as_str().unwrap(),
            "{before} / {next}"
        );
    }
    for wave in waves {
        assert_eq!(wave["written"], wave["size"], "{wave}");
        assert_eq!(wave["converged"], wave["size"], "{wave}");
        assert_eq!(wave["delivered"], wave["size"], "{wave}");
        assert_eq!(wave["skipped"], 0, "{wave}");
    }
    for (device, desired, version) in stack.desired().await {
        let i: i64 = device.trim_start_matches("sim-").parse().unwrap();
        assert_eq!(desired, json!({"rate": i, "firmware": "2.4.1"}), "{device}");
        assert_eq!(version, 2, "{device}: one version bump");
    }
    assert_retained_equals_database(&stack).await;
}

#[tokio::test]
async fn a_created_rollout_wakes_an_idle_machine_without_waiting_for_its_poll() {
    let stack = Stack::start(20).await;
    // A poll far longer than the test's patience: only the notification of
    // the new rollout can start it.
    let _machine = stack.machine_polling(8, Duration::from_secs(3600));
    // The machine's first step finds nothing due, then it waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let created = stack
        .create(json!({"selector": {"all": true}, "patch": {"firmware": "3"}}))
        .await;
    let id = created["id"].as_i64().unwrap();
    eventually(PATIENCE, "the wave written", || async {
        stack.rollout(id).await["waves"][0]["written"] == 20
    })
    .await;
}

#[tokio::test]
async fn rejections_abort_and_a_rollback_restores_all_but_hand_patched_devices() {
    let stack = Stack::start(200).await;
    // The devices refuse the rollout's firmware.
    let _devices = stack.simulate(|s| s.reject.when = vec!["firmware=2.4.1".parse().unwrap()]);
    wait_in_sync(&stack).await;
    let _machine = stack.machine(50);
    let created = stack
        .create(json!({
            "selector": {"all": true},
            "patch": {"firmware": "2.4.1", "rate": null},
            "waves": [0.25, 0.5, 1.0],
            "min_converged": 0.5,
            "max_rejected": 0.05,
        }))
        .await;
    let id = created["id"].as_i64().unwrap();
    let aborted = stack.wait_status(id, "aborted").await;
    let reason = aborted["abort_reason"].as_str().unwrap();
    assert!(reason.contains("rejected"), "{reason}");
    let written: i64 = aborted["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["written"].as_i64().unwrap())
        .sum();
    let rejected: i64 = aborted["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["rejected"].as_i64().unwrap())
        .sum();
    assert!(rejected as f64 > 0.05 * written as f64, "{aborted}");
    // Nothing past the written waves got a new version.
    let outcomes: HashMap<String, Option<String>> = stack.outcomes(id).await.into_iter().collect();
    let mut bumped = 0;
    for (device, _, version) in stack.desired().await {
        match outcomes[&device].as_deref() {
            Some("written") => {
                assert_eq!(version, 2, "{device}");
                bumped += 1;
            }
            None => assert_eq!(version, 1, "{device} was never written"),
            other => panic!("{device}: {other:?}"),
        }
    }
    assert_eq!(bumped, written);
    assert!(written < 200, "the last wave is never written: {aborted}");

    // An operator fixes one written device by hand: the rollback leaves it.
    let (hand, _) = outcomes
        .iter()
        .find(|(_, o)| o.as_deref() == Some("written"))
        .unwrap();
    stack
        .call(
            Method::PATCH,
            &format!("/devices/{hand}/desired"),
            Some(json!({"firmware": "2.4.2"})),
            StatusCode::OK,
        )
        .await;
    stack
        .call(
            Method::POST,
            &format!("/rollouts/{id}/resume"),
            None,
            StatusCode::CONFLICT,
        )
        .await;
    stack
        .call(
            Method::POST,
            &format!("/rollouts/{id}/rollback"),
            None,
            StatusCode::OK,
        )
        .await;
    let rolled_back = stack.wait_status(id, "rolled_back").await;
    assert_eq!(
        rolled_back["rollback"]["restored"],
        written - 1,
        "{rolled_back}"
    );
    assert_eq!(rolled_back["rollback"]["changed"], 1, "{rolled_back}");
    for (device, desired, version) in stack.desired().await {
        let i: i64 = device.trim_start_matches("sim-").parse().unwrap();
        if device == *hand {
            assert_eq!(desired, json!({"firmware": "2.4.2"}), "{device}");
            assert_eq!(version, 3, "{device}");
        } else if outcomes[&device].is_some() {
            assert_eq!(desired, json!({"rate": i}), "{device} restored");
            assert_eq!(version, 3, "{device}: restored as a new version");
        } else {
            assert_eq!((desired, version), (json!({"rate": i}), 1), "{device}");
        }
    }
    assert_retained_equals_database(&stack).await;
    stack
        .call(
            Method::POST,
            &format!("/rollouts/{id}/rollback"),
            None,
            StatusCode::CONFLICT,
        )
        .await;
    // A restored device's history names the rollout as the actor of both.
    let restored = outcomes
        .iter()
        .find(|(device, o)| o.as_deref() == Some("written") && *device != hand)
        .map(|(device, _)| device)
        .unwrap();
    let history = stack
        .call(
            Method::GET,
            &format!("/devices/{restored}/history"),
            None,
            StatusCode::OK,
        )
        .await;
    let changes: Vec<(&str, &str, i64)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["change"].as_str().unwrap(),
                h["actor"].as_str().unwrap(),
                h["version"].as_i64().unwrap(),
            )
        })
        .collect();
    let actor = format!("rollout:{id}");
    assert_eq!(
        changes[..2],
        [
            ("rollback", actor.as_str(), 3),
            ("rollout", actor.as_str(), 2)
        ],
        "{history}"
    );
}

#[tokio::test]
async fn pause_stops_writes_and_the_timeout_clock_and_cancel_is_final() {
    let stack = Stack::start(40).await;
    let devices = stack.simulate(|_| {});
    wait_in_sync(&stack).await;
    // Devices that stop reporting keep the first wave from converging.
    devices.stop().await;
    let _machine = stack.machine(1000);
    let created = stack
        .create(json!({
            "selector": {"all": true},
            "patch": {"mode": "eco"},
            "waves": [0.5, 1.0],
            "wave_timeout": "2s",
        }))
        .await;
    let id = created["id"].as_i64().unwrap();
    eventually(PATIENCE, "wave 1 written", || async {
        stack.rollout(id).await["waves"][0]["written"] == 20
    })
    .await;
    let paused = stack
        .call(
            Method::POST,
            &format!("/rollouts/{id}/pause"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(paused["status"], "paused");
    stack
        .call(
            Method::POST,
            &format!("/rollouts/{id}/pause"),
            None,
            StatusCode::CONFLICT,
        )
        .await;
    stack
        .call(
            Method::POST,
            &format!("/rollouts/{id}/rollback"),
            None,
            StatusCode::CONFLICT,
        )
        .await;
    // Paused longer than the timeout: the clock stood still.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.rollout(id).await["status"], "paused");
    // The devices come back while paused: on resume the wave converges
    // and the second one is written.
    let _devices = stack.simulate(|_| {});
    stack
        .call(
            Method::POST,
            &format!("/rollouts/{id}/resume"),
            None,
            StatusCode::OK,
        )
        .await;
    let done = stack.wait_status(id, "completed").await;
    assert_eq!(done["waves"][1]["written"], 20, "{done}");

    // A second rollout whose devices never report times out...
    drop(_devices);
    let timed_out = stack
        .create(
            json!({"selector": {"device_ids": ["sim-00001", "sim-00002"]},
                       "patch": {"mode": "off"}, "wave_timeout": "1s"}),
        )
        .await;
    let timed_out = stack
        .wait_status(timed_out["id"].as_i64().unwrap(), "aborted")
        .await;
    assert!(
        timed_out["abort_reason"]
            .as_str()
            .unwrap()
            .contains("did not converge"),
        "{timed_out}"
    );
    // ... and a cancelled one writes nothing more.
    let cancelled = stack
        .create(json!({"selector": {"all": true}, "patch": {"mode": "max"},
                       "waves": [0.1, 1.0]}))
        .await;
    let cid = cancelled["id"].as_i64().unwrap();
    eventually(PATIENCE, "wave 1 written", || async {
        stack.rollout(cid).await["waves"][0]["written"] == 4
    })
    .await;
    stack
        .call(
            Method::POST,
            &format!("/rollouts/{cid}/cancel"),
            None,
            StatusCode::OK,
        )
        .await;
    stack
        .call(
            Method::POST,
            &format!("/rollouts/{cid}/resume"),
            None,
            StatusCode::CONFLICT,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = stack.rollout(cid).await;
    assert_eq!(after["status"], "cancelled");
    assert_eq!(after["waves"][1]["written"], 0, "{after}");
}

#[tokio::test]
async fn two_machines_and_a_restart_write_each_device_exactly_once() {
    let stack = Stack::start(600).await;
    let _devices = stack.simulate(|_| {});
    wait_in_sync(&stack).await;
    let first = stack.machine(25);
    let second = stack.machine(25);
    let created = stack
        .create(
            json!({"selector": {"all": true}, "patch": {"firmware": "3"},
                       "waves": [0.5, 1.0]}),
        )
        .await;
    let id = created["id"].as_i64().unwrap();
    // One machine crashes in the middle of the first wave; a new one
    // takes its place.
    eventually(PATIENCE, "part of wave 1 written", || async {
        stack.rollout(id).await["waves"][0]["written"]
            .as_i64()
            .unwrap()
            >= 50
    })
    .await;
    first.abort().await;
    let _third = stack.machine(25);
    stack.wait_status(id, "completed").await;
    second.stop().await;
    for (device, desired, version) in stack.desired().await {
        assert_eq!(version, 2, "{device}: exactly one version bump");
        assert_eq!(desired["firmware"], "3", "{device}");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE version = 2")
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 600, "one outbox row per device");
    assert_retained_equals_database(&stack).await;
}

#[tokio::test]
async fn patches_racing_a_rollout_are_never_lost() {
    let stack = Stack::start(300).await;
    let _devices = stack.simulate(|_| {});
    wait_in_sync(&stack).await;
    let _machine = stack.machine(20);
    let created = stack
        .create(json!({"selector": {"all": true}, "patch": {"firmware": "4"}}))
        .await;
    let id = created["id"].as_i64().unwrap();
    // Meanwhile an operator patches every tenth device, three times.
    let mut patched = HashMap::new();
    for round in 0..3 {
        for i in (0..300).step_by(10) {
            let device = format!("sim-{i:05}");
            let answer = stack
                .call(
                    Method::PATCH,
                    &format!("/devices/{device}/desired"),
                    Some(json!({"hand": round})),
                    StatusCode::OK,
                )
                .await;
            let version = answer["desired_version"].as_i64().unwrap();
            let previous = patched.insert(device.clone(), version);
            assert!(
                previous.is_none_or(|p| p < version),
                "{device}: versions increase"
            );
        }
    }
    stack.wait_status(id, "completed").await;
    for (device, desired, version) in stack.desired().await {
        let i: i64 = device.trim_start_matches("sim-").parse().unwrap();
        assert_eq!(desired["firmware"], "4", "{device}: the rollout's change");
        assert_eq!(desired["rate"], i, "{device}: its own document");
        if i % 10 == 0 {
            assert_eq!(desired["hand"], 2, "{device}: the last hand patch");
            assert_eq!(version, 5, "{device}: one bump per change");
        } else {
            assert_eq!(version, 2, "{device}");
        }
    }
    assert_retained_equals_database(&stack).await;
}

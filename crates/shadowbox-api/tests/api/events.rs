//! The event stream through a real HTTP client reading it: every event
//! type, commit order, the device filter, tenants kept apart, resuming
//! with `Last-Event-ID`, a transaction that commits late, a client that
//! never reads, heartbeats and shutdown.
//!
//! Events come from the statements that make them: the API's writes, and
//! the relay's and the ingester's own statements (`shadowbox_db::relay`,
//! `shadowbox_db::reported`) run here directly.

use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shadowbox_core::backoff::RefusalBackoff;
use shadowbox_core::document::into_document;
use shadowbox_core::payload::Rejection;
use shadowbox_core::{Actor, DeviceId, DocumentLimits, TenantId};
use shadowbox_db::desired::{DesiredChange, apply_desired_change};
use shadowbox_db::relay;
use shadowbox_db::reported::{ReceivedRejection, ReportedState, ReportedUpdate, apply_reported};
use shadowbox_testkit::{PATIENCE, eventually, metric_value};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{ADMIN, TestApp, expect_json, expect_problem, spawn_app, spawn_with};

/// One frame of the stream: an event, or a comment.
#[derive(Debug, Clone, Default)]
struct Frame {
    id: Option<String>,
    event: Option<String>,
    data: Option<Value>,
    comment: Option<String>,
    raw: String,
}

/// A stream read by a real HTTP client, frame by frame.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// Opens `path` with `token` (and `Last-Event-ID`, if given).
    async fn open(app: &TestApp, path: &str, token: &str, last: Option<&str>) -> Self {
        let mut request = app.request(Method::GET, path, Some(token));
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next frame, `None` at the end of the stream or after `wait`.
    async fn frame(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let text: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame {
                    raw: text.clone(),
                    ..Frame::default()
                };
                for line in text.lines().filter(|l| !l.is_empty()) {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                    match field {
                        "" => frame.comment = Some(value),
                        "id" => frame.id = Some(value),
                        "event" => frame.event = Some(value),
                        "data" => frame.data = Some(serde_json::from_str(&value).unwrap()),
                        other => panic!("unexpected field {other}"),
                    }
                }
                return Some(frame);
            }
            match tokio::time::timeout(wait, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(Ok(None)) | Err(_) => return None,
                Ok(Err(e)) => panic!("stream failed: {e}"),
            }
        }
    }

    /// The next event (skipping heartbeats), within [`PATIENCE`].
    async fn event(&mut self) -> Frame {
        loop {
            let frame = self
                .frame(PATIENCE)
                .await
                .expect("an event within the patience");
            if frame.event.is_some() {
                return frame;
            }
            assert_eq!(frame.comment.as_deref(), Some("heartbeat"));
        }
    }

    /// The next `n` events, each as `(event, device_id, version)`.
    async fn take(&mut self, n: usize) -> Vec<(String, Value, Value, String)> {
        let mut events = Vec::new();
        for _ in 0..n {
            let frame = self.event().await;
            let data = frame.data.unwrap();
            events.push((
                frame.event.unwrap(),
                data["device_id"].clone(),
                data["version"].clone(),
                frame.id.unwrap(),
            ));
        }
        events
    }

    /// Asserts no event arrives within `wait`.
    async fn quiet(&mut self, wait: Duration) {
        if let Some(frame) = self.frame(wait).await {
            assert!(frame.event.is_none(), "unexpected event {frame:?}");
        }
    }
}

/// `(event, device, version)` of taken events.
fn kinds(events: &[(String, Value, Value, String)]) -> Vec<(&str, Value, Value)> {
    events
        .iter()
        .map(|(e, d, v, _)| (e.as_str(), d.clone(), v.clone()))
        .collect()
}

async fn patch(app: &TestApp, token: &str, tenant: &str, device: &str, body: Value) {
    let response = app
        .request(
            Method::PATCH,
            &format!("/v1/tenants/{tenant}/devices/{device}/desired"),
            Some(token),
        )
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
}

/// Settles every due outbox row as the relay would: delivered, or (with
/// `refuse`) refused once and so dead.
async fn relay_batch(pool: &PgPool, refuse: bool) {
    let mut tx = pool.begin().await.unwrap();
    let locked = relay::lock_devices(&mut tx, 100, 1000).await.unwrap();
    let claim = relay::take_newest(&mut tx, &locked).await.unwrap();
    if refuse {
        let ids: Vec<i64> = claim.rows.iter().map(|r| r.id).collect();
        let policy = RefusalBackoff {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(1),
            max_attempts: 1,
        };
        relay::mark_failed(
            &mut tx,
            &ids,
            "the broker refused it: 0x87 not authorized",
            &policy,
        )
        .await
        .unwrap();
    } else {
        let acked: Vec<_> = claim.rows.iter().map(|r| (r.id, Utc::now())).collect();
        relay::mark_delivered(&mut tx, &acked).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Stores a report of `device` as the ingester would: `version` applied,
/// or (with `reject`) a refusal of it.
async fn report(pool: &PgPool, device: &str, version: i64, reject: Option<&str>) {
    let now = Utc::now();
    let update = ReportedUpdate {
        tenant_id: TenantId::parse("acme").unwrap(),
        device_id: DeviceId::parse(device).unwrap(),
        reported: reject.is_none().then(|| ReportedState {
            document: serde_json::Map::new(),
            version,
            received_at: now,
        }),
        rejection: reject.map(|reason| ReceivedRejection {
            rejection: Rejection {
                version,
                reason: reason.to_owned(),
            },
            received_at: now,
        }),
        seen_at: now,
    };
    apply_reported(pool, &[update]).await.unwrap();
}

async fn metrics(app: &TestApp) -> String {
    app.send(Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_event_type_arrives_in_commit_order_within_its_tenant() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let other = app.tenant_with_key("globex").await;
    let mut all = Events::open(&app, "/v1/tenants/acme/events", &key, None).await;
    let mut pump = Events::open(&app, "/v1/tenants/acme/events?device_id=pump", &key, None).await;
    let mut theirs = Events::open(&app, "/v1/tenants/globex/events", &other, None).await;

    app.register(&key, "acme", "pump", Some(json!({"rate": 1})))
        .await;
    app.register(&key, "acme", "fan", Some(json!({"on": true})))
        .await;
    app.register(&other, "globex", "pump", Some(json!({"x": 1})))
        .await;
    patch(&app, ADMIN, "acme", "pump", json!({"rate": 2})).await;
    relay_batch(&app.db.pool, false).await; // pump v2 and fan v1 delivered
    report(&app.db.pool, "pump", 2, None).await;
    patch(&app, &key, "acme", "pump", json!({"rate": 3})).await;
    report(&app.db.pool, "pump", 3, Some("rate out of range")).await;
    patch(&app, &key, "acme", "fan", json!({"on": false})).await;
    relay_batch(&app.db.pool, true).await; // pump v3 and fan v2 dead
    let mut tx = app.db.pool.begin().await.unwrap();
    let status = json!({"status": "paused"});
    shadowbox_db::events::record_rollout(
        &mut tx,
        &TenantId::parse("acme").unwrap(),
        7,
        status.as_object().unwrap(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let (p, f, none) = (json!("pump"), json!("fan"), Value::Null);
    let events = all.take(12).await;
    let seen = kinds(&events);
    // One relay batch settles its rows in one statement, in row order.
    assert_eq!(
        seen,
        vec![
            ("desired", p.clone(), json!(1)),
            ("desired", f.clone(), json!(1)),
            ("desired", p.clone(), json!(2)),
            ("delivered", f.clone(), json!(1)),
            ("delivered", p.clone(), json!(2)),
            ("applied", p.clone(), json!(2)),
            ("desired", p.clone(), json!(3)),
            ("rejected", p.clone(), json!(3)),
            ("desired", f.clone(), json!(2)),
            ("dead", p.clone(), json!(3)),
            ("dead", f.clone(), json!(2)),
            ("rollout", none.clone(), none.clone()),
        ]
    );
    let ids: Vec<(i64, i64)> = events
        .iter()
        .map(|e| {
            let (x, s) = e.3.split_once('-').unwrap();
            (x.parse().unwrap(), s.parse().unwrap())
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    // The data of each: the contract's fields, and each event's own.
    let mut again = Events::open(&app, "/v1/tenants/acme/events", &key, Some("0-0")).await;
    let mut data = Vec::new();
    for _ in 0..12 {
        let frame = again.event().await;
        let d = frame.data.unwrap();
        assert_eq!(d["type"].as_str(), frame.event.as_deref());
        assert_eq!(d["tenant_id"], "acme");
        assert!(d["at"].as_str().unwrap().ends_with('Z'), "{d}");
        data.push(d);
    }
    assert_eq!(
        (&data[0]["change"], &data[0]["actor"]),
        (&json!("register"), &data[1]["actor"])
    );
    assert!(data[0]["actor"].as_str().unwrap().starts_with("key:"));
    assert_eq!(
        (&data[2]["change"], &data[2]["actor"]),
        (&json!("merge"), &json!("admin"))
    );
    assert_eq!(data[3]["kind"], "desired");
    assert_eq!(data[5]["in_sync"], true);
    assert_eq!(data[7]["reason"], "rate out of range");
    assert_eq!(
        data[9]["last_error"],
        "the broker refused it: 0x87 not authorized"
    );
    assert_eq!(
        (&data[11]["rollout_id"], &data[11]["status"]),
        (&json!(7), &json!("paused"))
    );

    // The device filter, and the other tenant's stream.
    assert_eq!(
        kinds(&pump.take(7).await),
        vec![
            ("desired", p.clone(), json!(1)),
            ("desired", p.clone(), json!(2)),
            ("delivered", p.clone(), json!(2)),
            ("applied", p.clone(), json!(2)),
            ("desired", p.clone(), json!(3)),
            ("rejected", p.clone(), json!(3)),
            ("dead", p.clone(), json!(3)),
        ]
    );
    assert_eq!(
        kinds(&theirs.take(2).await),
        vec![
            ("desired", p.clone(), json!(1)),
            ("delivered", p.clone(), json!(1)),
        ]
    );
    theirs.quiet(Duration::from_millis(500)).await;
    pump.quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn streams_stay_within_their_tenant_and_refuse_what_they_never_gave_out() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let other = app.tenant_with_key("globex").await;
    let problem = expect_problem(
        app.send(Method::GET, "/v1/tenants/acme/events", Some(&other), None)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(problem["detail"], "tenant not found");
    for last in ["12", "x-1", "1-2-3", ""] {
        let response = app
            .request(Method::GET, "/v1/tenants/acme/events", Some(&key))
            .header("last-event-id", last)
            .send()
            .await
            .unwrap();
        expect_problem(response, StatusCode::BAD_REQUEST).await;
    }
    expect_problem(
        app.send(
            Method::GET,
            "/v1/tenants/acme/events?device_id=a%2Fb",
            Some(&key),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect_problem(
        app.send(Method::GET, "/v1/tenants/nobody/events", Some(ADMIN), None)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn resuming_with_last_event_id_loses_nothing_and_repeats_nothing() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let mut first = Events::open(&app, "/v1/tenants/acme/events", &key, None).await;
    app.register(&key, "acme", "d", None).await;
    for i in 1..=5 {
        patch(&app, &key, "acme", "d", json!({ "i": i })).await;
    }
    let seen = first.take(4).await;
    drop(first);
    for i in 6..=8 {
        patch(&app, &key, "acme", "d", json!({ "i": i })).await;
    }
    let last = seen[3].3.clone();
    let mut resumed = Events::open(&app, "/v1/tenants/acme/events", &key, Some(&last)).await;
    let rest = resumed.take(5).await;
    let versions: Vec<Value> = seen.iter().chain(&rest).map(|e| e.2.clone()).collect();
    assert_eq!(versions, (0..=8).map(|v| json!(v)).collect::<Vec<_>>());
    resumed.quiet(Duration::from_millis(500)).await;
    // From the last id, nothing more.
    let last = rest[4].3.clone();
    let mut caught_up = Events::open(&app, "/v1/tenants/acme/events", &key, Some(&last)).await;
    caught_up.quiet(Duration::from_millis(500)).await;
}

/// A transaction that began writing first but commits last: a stream
/// holds back the events after it until it commits, then sends its event
/// first, so a client that resumes after the later event missed nothing.
#[tokio::test]
async fn an_event_that_commits_late_is_never_skipped() {
    let app = spawn_app().await;
    let key = app.tenant_with_key("acme").await;
    let mut stream = Events::open(&app, "/v1/tenants/acme/events", &key, None).await;
    app.register(&key, "acme", "early", None).await;
    app.register(&key, "acme", "late", None).await;
    assert_eq!(stream.take(2).await.len(), 2, "the registrations");

    let mut slow = app.db.pool.begin().await.unwrap();
    apply_desired_change(
        &mut slow,
        &TenantId::parse("acme").unwrap(),
        &DeviceId::parse("early").unwrap(),
        DesiredChange::Merge(into_document(json!({"a": 1})).unwrap()),
        None,
        &DocumentLimits::default(),
        Actor::Admin,
    )
    .await
    .unwrap();
    patch(&app, &key, "acme", "late", json!({"b": 1})).await;
    // The committed event waits behind the open transaction.
    stream.quiet(Duration::from_secs(1)).await;
    slow.commit().await.unwrap();

    let events = stream.take(2).await;
    assert_eq!(
        kinds(&events),
        vec![
            ("desired", json!("early"), json!(1)),
            ("desired", json!("late"), json!(1)),
        ]
    );
    // Resuming after the first sends the second; after the second, none.
    let mut resumed = Events::open(&app, "/v1/tenants/acme/events", &key, Some(&events[0].3)).await;
    assert_eq!(kinds(&resumed.take(1).await), kinds(&events[1..]));
    resumed.quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off() {
    let app = spawn_with(|s| {
        s.events_buffer = 8;
        s.send_timeout = Duration::from_secs(1);
    })
    .await;
    let key = app.tenant_with_key("acme").await;
    app.register(&key, "acme", "d", None).await;
    let addr = app.base.strip_prefix("http://").unwrap().parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut client = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nLast-Event-ID: 0-0\r\nConnection: close\r\n\r\n"
    );
    client.write_all(request.as_bytes()).await.unwrap();
    // About 16 MB of events, far more than the socket buffers hold.
    sqlx::query(
        "INSERT INTO events (tenant_id, event, device_id, version, data)
         SELECT 'acme', 'desired', 'd', g, jsonb_build_object('pad', repeat('x', 4000))
         FROM generate_series(1, 4000) AS g",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    eventually(PATIENCE, "the slow stream closed", || async {
        let text = metrics(&app).await;
        metric_value(
            &text,
            "shadowbox_events_streams_closed_total{reason=\"slow_client\"}",
        ) == Some(1.0)
            && metric_value(&text, "shadowbox_events_streams") == Some(0.0)
    })
    .await;
    // The connection is gone: what the kernel held arrives, then the end.
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut received))
        .await
        .expect("the server closed the connection")
        .ok();
    assert!(received.starts_with(b"HTTP/1.1 200 OK"));
    assert!(
        received.len() < 16_000_000,
        "cut off: {} bytes",
        received.len()
    );
}

#[tokio::test]
async fn idle_streams_beat_and_shutdown_ends_them() {
    let app = spawn_with(|s| s.events_heartbeat = Duration::from_millis(200)).await;
    let key = app.tenant_with_key("acme").await;
    let mut stream = Events::open(&app, "/v1/tenants/acme/events", &key, None).await;
    let beat = stream.frame(PATIENCE).await.unwrap();
    assert_eq!(beat.comment.as_deref(), Some("heartbeat"), "{:?}", beat.raw);
    app.shutdown.cancel();
    let mut last = None;
    while let Some(frame) = stream.frame(PATIENCE).await {
        last = Some(frame);
    }
    let closing = last.and_then(|f| f.comment).unwrap_or_default();
    assert!(closing.starts_with("closed shutdown"), "{closing}");
    tokio::time::timeout(Duration::from_secs(10), app.server)
        .await
        .expect("shutdown is not held up by the stream")
        .unwrap()
        .unwrap();
}

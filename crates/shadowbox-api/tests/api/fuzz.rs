//! Generated requests against the real router on a real socket with a real
//! database: every operation of the OpenAPI document (so new routes are
//! covered as they are added), `/openapi.json`, and paths no route
//! matches, each with generated path segments, query, headers and body.
//!
//! Whatever comes in, the server answers: never a 500 (nor another 5xx
//! but the 503 of `/readyz`, whose broker is absent here), every error is
//! `application/problem+json`, and no request loses its connection (what
//! a panicking handler does). proptest shrinks a failure to a minimal
//! request before reporting it.

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN, TestApp, expect_json, spawn_app};

/// Requests per run: a few seconds here, well under a minute on a loaded
/// CI machine. `PROPTEST_CASES` overrides it for a longer hunt.
const CASES: u32 = 1500;

/// What the generated requests are made of: the running app and the
/// values that reach past validation (real tenants, keys, devices, rows).
/// Each part of a request is mostly valid and sometimes generated freely,
/// so that requests get past authentication and routing and reach the
/// handlers' own rules and the database.
struct World {
    app: TestApp,
    /// `(template, methods)` of every operation.
    routes: Vec<(String, Vec<Method>)>,
    /// Path parameter values that name real things.
    names: Names,
    /// `Authorization` values that are accepted (admin, tenant key).
    good_authorizations: Vec<String>,
    /// `Authorization` values that are not, or not for `acme`.
    bad_authorizations: Vec<String>,
}

/// Real names for each kind of path parameter.
#[derive(Debug, Clone)]
struct Names {
    /// Active devices of `acme`.
    devices: Vec<String>,
    /// Outbox rows of `acme`.
    rows: Vec<String>,
}

impl Names {
    /// A value for path parameter `param` of `template`: mostly a real
    /// name of its kind, sometimes a wrong or any segment. Decommissioning
    /// aims at the device decommissioned already, so the active ones stay
    /// writable for the whole run.
    fn segment(&self, template: &str, param: &str) -> BoxedStrategy<String> {
        let (real, wrong): (Vec<String>, Vec<&str>) = match param {
            "tenant_id" => (vec!["acme".to_owned()], vec!["other", "nobody"]),
            "device_id" if template.ends_with("/decommission") => {
                (vec!["d3".to_owned()], vec!["nope"])
            }
            "device_id" => (self.devices.clone(), vec!["d3", "nope"]),
            _ => (self.rows.clone(), vec!["0", "-1", "9223372036854775807"]),
        };
        prop_oneof![
            7 => select(real),
            1 => select(wrong).prop_map(str::to_owned),
            2 => any_segment(),
        ]
        .boxed()
    }
}

impl World {
    async fn set_up() -> Self {
        let app = spawn_app().await;
        let acme = app.tenant_with_key("acme").await;
        let other = app.tenant_with_key("other").await;
        app.register(&acme, "acme", "d1", Some(json!({"a": {"b": [1, "x"]}})))
            .await;
        app.register(&acme, "acme", "d2", None).await;
        app.register(&acme, "acme", "d3", Some(json!({"a": 1})))
            .await;
        app.send(
            Method::POST,
            "/v1/tenants/acme/devices/d3/decommission",
            Some(&acme),
            None,
        )
        .await;
        let (dead,): (i64,) = sqlx::query_as(
            "UPDATE outbox SET status = 'dead', last_error = 'refused'
             WHERE device_id = 'd1' RETURNING id",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();

        let doc = expect_json(
            app.send(Method::GET, "/openapi.json", None, None).await,
            StatusCode::OK,
        )
        .await;
        let mut routes: Vec<(String, Vec<Method>)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .map(|(template, operations)| {
                let methods = operations
                    .as_object()
                    .expect("operations")
                    .keys()
                    .map(|m| Method::from_bytes(m.to_uppercase().as_bytes()).unwrap())
                    .collect();
                (template.clone(), methods)
            })
            .collect();
        assert!(routes.len() >= 10, "the OpenAPI document lists the routes");
        routes.push(("/openapi.json".to_owned(), vec![Method::GET]));

        let wrong_key = format!("sbk_{}_{}", uuid::Uuid::new_v4().simple(), "x".repeat(43));
        Self {
            app,
            routes,
            names: Names {
                devices: vec!["d1".to_owned(), "d2".to_owned()],
                rows: vec![dead.to_string()],
            },
            good_authorizations: vec![
                format!("Bearer {ADMIN}"),
                format!("Bearer {acme}"),
                format!("bearer {acme}"),
            ],
            bad_authorizations: vec![
                format!("Bearer {other}"),
                format!("Bearer {wrong_key}"),
                format!("Bearer {}", &acme[..acme.len() - 1]),
                "Bearer ".to_owned(),
                "Basic YWRtaW46YWRtaW4=".to_owned(),
            ],
        }
    }

    /// Any request, most of them aimed at a route of the document.
    fn requests(&self) -> impl Strategy<Value = FuzzRequest> + use<> {
        let names = self.names.clone();
        let routed = select(self.routes.clone())
            .prop_flat_map(move |(template, methods)| {
                let values: Vec<BoxedStrategy<String>> = template
                    .split('/')
                    .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
                    .map(|param| names.segment(&template, param))
                    .collect();
                (Just(template), values, route_method(methods))
            })
            .prop_map(|(template, values, method)| (fill(&template, &values), method));
        let unrouted = (proptest::collection::vec(any_segment(), 1..4), any_method())
            .prop_map(|(segments, method)| (format!("/v1/{}", segments.join("/")), method));
        let path = prop_oneof![9 => routed, 1 => unrouted];
        let authorization = prop_oneof![
            8 => select(self.good_authorizations.clone()).prop_map(Some),
            1 => select(self.bad_authorizations.clone()).prop_map(Some),
            1 => prop_oneof![Just(None), header_text().prop_map(|t| Some(format!("Bearer {t}")))],
        ];
        let content_type = prop_oneof![
            8 => select(vec!["application/json", "application/merge-patch+json"]).prop_map(Some),
            1 => Just(None),
            2 => select(vec![
                "application/json; charset=utf-8",
                "APPLICATION/JSON",
                "application/vnd.other+json",
                "text/plain",
                "multipart/form-data; boundary=x",
                "",
                ";;",
            ])
            .prop_map(Some),
        ];
        (
            path,
            query(),
            authorization,
            content_type,
            headers(),
            body(),
        )
            .prop_map(
                |((path, method), query, authorization, content_type, mut headers, body)| {
                    if let Some(authorization) = authorization {
                        headers.push(("authorization".to_owned(), authorization));
                    }
                    if let Some(content_type) = content_type {
                        headers.push(("content-type".to_owned(), content_type.to_owned()));
                    }
                    FuzzRequest {
                        method,
                        path,
                        query,
                        headers,
                        body,
                    }
                },
            )
    }

    /// Sends `request` and checks the answer.
    async fn check(&self, request: &FuzzRequest) -> Result<(), TestCaseError> {
        let mut url = format!("{}{}", self.app.base, request.path);
        if !request.query.is_empty() {
            url = format!("{url}?{}", request.query);
        }
        let Ok(url) = reqwest::Url::parse(&url) else {
            return Err(TestCaseError::reject("not a URL"));
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let mut builder = self
            .app
            .client
            .request(request.method.clone(), url)
            .headers(headers)
            .timeout(Duration::from_secs(10));
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = builder
            .send()
            .await
            .map_err(|e| TestCaseError::fail(format!("no answer (did a handler panic?): {e:?}")))?;
        let status = response.status();
        prop_assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            prop_assert_eq!(
                (request.path.as_str(), status),
                ("/readyz", StatusCode::SERVICE_UNAVAILABLE)
            );
        }
        if status.is_client_error() || status.is_server_error() {
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.as_bytes().to_vec());
            prop_assert_eq!(
                content_type.as_deref(),
                Some(&b"application/problem+json"[..]),
                "{} is not a problem",
                status
            );
            let body = response.bytes().await.map_err(|e| {
                TestCaseError::fail(format!("the body did not arrive (a panic?): {e:?}"))
            })?;
            if request.method != Method::HEAD {
                let problem: Value = serde_json::from_slice(&body)
                    .map_err(|e| TestCaseError::fail(format!("problem is not JSON: {e}")))?;
                prop_assert_eq!(&problem["status"], &json!(status.as_u16()));
            }
        }
        Ok(())
    }
}

/// One generated request.
#[derive(Clone)]
struct FuzzRequest {
    method: Method,
    /// Already percent-encoded.
    path: String,
    /// Already percent-encoded, without `?`.
    query: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

/// Shows the body as text, so a failure report reads as a request.
impl std::fmt::Debug for FuzzRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuzzRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &self.headers)
            .field("body", &self.body.as_deref().map(String::from_utf8_lossy))
            .finish()
    }
}

#[test]
fn generated_requests_never_answer_500_nor_kill_the_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let world = runtime.block_on(World::set_up());
    let cases = match std::env::var_os("PROPTEST_CASES") {
        Some(_) => Config::default().cases,
        None => CASES,
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&world.requests(), |request| {
        runtime.block_on(world.check(&request))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let health = runtime.block_on(world.app.send(Method::GET, "/healthz", None, None));
    assert_eq!(health.status(), StatusCode::OK, "the server still serves");
}

/// `template` with its `{param}`s replaced by `values`, in order.
fn fill(template: &str, values: &[String]) -> String {
    let mut values = values.iter();
    template
        .split('/')
        .map(|part| {
            if part.starts_with('{') && part.ends_with('}') {
                values.next().cloned().unwrap_or_default()
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes every byte but the unreserved ones.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A valid identifier: 1-12 of `A-Z a-z 0-9 _ - . :`.
fn identifier() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        select(b"ABCXYZabcxyz0189_-.:".to_vec()).prop_map(char::from),
        1..12,
    )
    .prop_map(String::from_iter)
}

/// Any path segment (already encoded): arbitrary text, identifiers, and
/// encodings a router may trip on.
fn any_segment() -> impl Strategy<Value = String> {
    let tricky = [
        "",
        "%00",
        "a%00b",
        "%2F",
        "a%2Fb",
        "..",
        ".",
        "%2B",
        "%23",
        "%24SYS",
        "%E2%82%AC",
        "%FF",
        "%zz",
        "%C3",
        "%20",
    ];
    prop_oneof![
        2 => any::<String>().prop_map(|s| encode(&s)),
        1 => identifier(),
        1 => select(tricky.to_vec()).prop_map(str::to_owned),
        1 => (120usize..140).prop_map(|n| "a".repeat(n)),
    ]
}

/// Mostly a method of the route, sometimes any other.
fn route_method(methods: Vec<Method>) -> impl Strategy<Value = Method> {
    prop_oneof![4 => select(methods), 1 => any_method()]
}

fn any_method() -> impl Strategy<Value = Method> {
    let standard = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
    ];
    prop_oneof![
        3 => select(standard.to_vec()),
        1 => proptest::collection::vec(
            select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'*+-.^_`|~".to_vec()),
            1..12,
        )
        .prop_map(|token| Method::from_bytes(&token).unwrap()),
    ]
}

/// A query string (already encoded): the known parameters with likely
/// and unlikely values, and arbitrary ones.
fn query() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        3 => select(vec!["1", "2", "50", "1000"]).prop_map(str::to_owned),
        1 => select(vec!["0", "1001", "-1", "99999999999999999999", "1e3", ""])
            .prop_map(str::to_owned),
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ];
    // A cursor is `<list>:<position>`.
    let position = prop_oneof![
        2 => select(vec!["\u{0}", "", "d1", "a\u{0}b", "-1", "1", "a/b", "\n", "9999999999999999999"])
            .prop_map(str::to_owned),
        1 => any_text(),
    ];
    let tag = prop_oneof![3 => Just("d:"), 2 => Just("o:"), 1 => select(vec!["x:", "d", ""])];
    let cursor = (tag, position).prop_map(|(tag, position)| encode(&format!("{tag}{position}")));
    let word = |words: Vec<&'static str>| prop_oneof![4 => select(words).prop_map(str::to_owned), 1 => any::<String>().prop_map(|s| encode(&s))];
    let pair = prop_oneof![
        3 => cursor.prop_map(|c| ("cursor".to_owned(), c)),
        2 => number.prop_map(|n| ("limit".to_owned(), n)),
        1 => word(vec!["active", "decommissioned", "pending", "delivered", "superseded", "dead"])
            .prop_map(|w| ("status".to_owned(), w)),
        1 => word(vec!["true", "false", "maybe", "1"]).prop_map(|w| ("in_sync".to_owned(), w)),
        1 => (
            select(vec!["tag", "older_than", "device_id", "cursor", "limit"]),
            word(vec!["site:x", "5m", "d1", ":", ""]),
        )
            .prop_map(|(k, v)| (k.to_owned(), v)),
        1 => (any::<String>(), any::<String>()).prop_map(|(k, v)| (encode(&k), encode(&v))),
    ];
    proptest::collection::vec(pair, 0..3).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// Text a header value can carry: visible ASCII, spaces and obs-text.
fn header_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![8 => 0x20u8..0x7f, 1 => 0x80u8..=0xff], 0..40)
        .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

/// Headers besides `Authorization` and `Content-Type`: `If-Match` forms
/// and arbitrary ones.
fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let if_match = prop_oneof![
        3 => select(vec![
            "\"1\"", "\"0\"", "*", "W/\"1\"", "\"\"", "null", "\"1\", \"2\"",
            "\"-9223372036854775808\"", "\"99999999999999999999\"",
        ])
        .prop_map(str::to_owned),
        1 => header_text(),
    ];
    let named = prop_oneof![
        1 => if_match.prop_map(|v| ("if-match".to_owned(), v)),
        2 => (
            select(vec![
                "x-request-id", "accept", "idempotency-key", "last-event-id", "if-none-match",
                "content-encoding", "range", "origin", "cookie", "x-forwarded-for",
            ]),
            header_text(),
        )
            .prop_map(|(name, value)| (name.to_owned(), value)),
        1 => (
            proptest::collection::vec(select(b"abcdefghijklmnopqrstuvwxyz-".to_vec()), 1..16),
            header_text(),
        )
            .prop_map(|(name, value)| {
                (format!("x-{}", String::from_utf8(name).unwrap()), value)
            }),
    ];
    proptest::collection::vec(named, 0..3)
}

/// Text of any character, NUL often among them.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        1 => select(vec!["\u{0}", "a\u{0}b", "", "$", "a.b"]).prop_map(str::to_owned),
    ]
}

/// JSON values of any shape.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            object(inner),
        ]
    })
}

/// JSON objects of `values`.
fn object(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(any_text(), values, 0..6)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
}

/// No body, a document (what desired writes take), a registration, JSON
/// of any shape, broken JSON, or bytes.
fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    let registration = (
        prop_oneof![3 => identifier(), 1 => any_text()],
        proptest::option::of(json_value()),
    )
        .prop_map(|(device_id, desired)| {
            let mut body = json!({ "device_id": device_id });
            if let Some(desired) = desired {
                body["desired"] = desired;
            }
            body
        });
    let deep = (1usize..200).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)));
    let broken = select(vec![
        "{\"a\": ",
        "{\"a\": 1e400}",
        "{\"a\": \"\\ud800\"}",
        "{\"a\": \"\\u0000\"}",
        "{\"\\u0000\": 1}",
        "{\"a\": 1, \"a\": 2}",
        "\u{feff}{}",
    ]);
    let json = |value: BoxedStrategy<Value>| value.prop_map(|v| Some(v.to_string().into_bytes()));
    prop_oneof![
        4 => json(object(json_value()).boxed()),
        2 => json(registration.boxed()),
        1 => json(json_value().boxed()),
        1 => Just(None),
        1 => prop_oneof![deep, broken.prop_map(str::to_owned)].prop_map(|t| Some(t.into_bytes())),
        1 => any::<Vec<u8>>().prop_map(Some),
    ]
}

//! The API's metrics: requests and their latency by method, route template
//! and status, and the event streams open and closed. `/metrics` itself is an operations route
//! (`routes::operations`), encoding the whole process's registry.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The labels of a request. Every value comes from a small fixed set, so
/// whatever clients send (before they are even authenticated), the
/// metrics cannot grow without bound.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method: one of the standard ones, or `other` ([`method_label`]).
    pub method: &'static str,
    /// Route template (`/v1/tenants/{tenant_id}/devices`), or `unmatched`.
    pub route: String,
    /// HTTP status code.
    pub status: u16,
}

/// The `method` label of `method`: the standard methods by name (`GET`,
/// ...), any other as `other`.
pub fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    STANDARD
        .iter()
        .find(|standard| *standard == method)
        .map_or("other", Method::as_str)
}

/// Why an event stream ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamClosedLabels {
    /// `client_gone`, `slow_client`, `shutdown` or `error`.
    pub reason: &'static str,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// What the API counts.
#[derive(Clone)]
pub struct ApiMetrics {
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Seconds from receiving a request to its response head.
    pub duration: HistogramFamily,
    /// Event streams open.
    pub event_streams: Gauge,
    /// Event streams ended, by reason.
    pub event_streams_closed: Family<StreamClosedLabels, Counter>,
}

impl ApiMetrics {
    /// Creates the metrics and registers them under `shadowbox_api_`.
    pub fn register(registry: &mut Registry) -> Self {
        fn latency() -> Histogram {
            // 1 ms to ~16 s.
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        }
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency),
            event_streams: Gauge::default(),
            event_streams_closed: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("shadowbox_api");
        r.register(
            "requests",
            "HTTP requests answered, by method, route and status",
            metrics.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "HTTP request latency, by method, route and status",
            metrics.duration.clone(),
        );
        let r = registry.sub_registry_with_prefix("shadowbox_events");
        r.register(
            "streams",
            "Event streams open",
            metrics.event_streams.clone(),
        );
        r.register(
            "streams_closed",
            "Event streams ended, by reason (client_gone, slow_client, shutdown, error)",
            metrics.event_streams_closed.clone(),
        );
        metrics
    }
}

/// Middleware that records every request. Router layers run after routing,
/// so the route template is known.
pub(crate) async fn track(
    State(metrics): State<ApiMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    metrics.requests.get_or_create(&labels).inc();
    metrics
        .duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_name_and_others_fold() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for other in ["FOO", "get", "PROPFIND", "other"] {
            let method = Method::from_bytes(other.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{other}");
        }
    }
}

//! Errors as RFC 9457 `application/problem+json`: the one [`ApiError`]
//! every handler returns, the single place where [`DbError`] becomes an
//! HTTP status, and the middleware that turns axum's own plain-text
//! rejections (bad JSON, wrong content type, bad path, 404, 405, 413) into
//! problems too.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shadowbox_core::DocumentError;
use shadowbox_core::tags::TagError;
use shadowbox_db::DbError;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document, as sent to clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Identifies the kind of problem: `urn:shadowbox:problem:<slug>`, or
    /// `about:blank` for plain HTTP errors.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

/// The OpenAPI description every `/v1` route shares: any client error
/// (401 without a valid token, 400 for a malformed path, query or header,
/// 404 for a missing or another tenant's resource, ...) is a problem
/// document. Routes list their specific errors beside it.
#[derive(utoipa::IntoResponses)]
#[response(
    status = "4XX",
    description = "problem",
    content_type = "application/problem+json"
)]
pub struct ClientProblem(
    #[expect(dead_code, reason = "only its type is read, by the OpenAPI derive")] Problem,
);

/// An error a handler answers with. Internal causes are logged where the
/// error is made and never reach the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
}

impl ApiError {
    fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
        }
    }

    /// 400: the request is malformed (an identifier, a parameter, a header).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// 401: no bearer token, or one that is neither the admin token nor a
    /// tenant key.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// 403: a tenant key on an admin route.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 404: the resource does not exist, or belongs to another tenant.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 422: a body that parses but breaks a rule of the contract.
    pub fn unprocessable(
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, slug, title, detail)
    }

    /// 415: a body in a media type the route does not take.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    /// 412: an `If-Match` that cannot match.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "version-mismatch",
            "Desired version mismatch",
            detail,
        )
    }

    /// 422: an `Idempotency-Key` sent again with another request.
    pub fn idempotency_key_reused(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused",
            detail,
        )
    }

    /// 503: a dependency is down.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            detail,
        )
    }

    /// 500: logs `err` with its context (the request's span carries the
    /// route and request id) and answers without any of it.
    pub fn internal(context: &str, err: &dyn std::error::Error) -> Self {
        tracing::error!(error = %err, error.debug = ?err, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "the server failed to handle the request; its logs have the details (see the x-request-id header)",
        )
    }

    fn problem(&self) -> Problem {
        Problem {
            problem_type: format!("urn:shadowbox:problem:{}", self.slug),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        use StatusCode as S;
        match err {
            DbError::TenantNotFound => Self::not_found("tenant not found"),
            DbError::NotFound(what) => Self::not_found(format!("{what} not found")),
            DbError::DeviceExists => Self::new(
                S::CONFLICT,
                "device-exists",
                "Device already exists",
                "a device with this id already exists in the tenant",
            ),
            DbError::Decommissioned => Self::new(
                S::CONFLICT,
                "decommissioned",
                "Device is decommissioned",
                "the device is decommissioned and takes no more desired writes",
            ),
            e @ DbError::VersionMismatch { .. } => Self::precondition_failed(e.to_string()),
            e @ DbError::NotDead(_) => Self::new(
                S::CONFLICT,
                "not-dead",
                "Outbox row is not dead",
                e.to_string(),
            ),
            // The fleet's state, not the request's form: like a 404, the
            // same request succeeds once a matching device exists.
            e @ DbError::EmptySelection => Self::new(
                S::CONFLICT,
                "empty-selection",
                "Selector matches no device",
                e.to_string(),
            ),
            e @ DbError::RolloutState { .. } => Self::new(
                S::CONFLICT,
                "rollout-state",
                "Rollout state does not allow this",
                e.to_string(),
            ),
            DbError::Document(e) => e.into(),
            DbError::Sqlx(e) => Self::internal("database error", &e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        DbError::Sqlx(err).into()
    }
}

impl From<DocumentError> for ApiError {
    fn from(err: DocumentError) -> Self {
        let (status, slug, title) = match err {
            DocumentError::NotAnObject(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "not-an-object",
                "Document is not a JSON object",
            ),
            DocumentError::TooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "document-too-large",
                "Document too large",
            ),
            DocumentError::TooDeep { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "document-too-deep",
                "Document nested too deep",
            ),
            DocumentError::HoldsNul(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "document-holds-nul",
                "Document holds a NUL character",
            ),
        };
        Self::new(status, slug, title, err.to_string())
    }
}

impl From<TagError> for ApiError {
    fn from(err: TagError) -> Self {
        Self::unprocessable("invalid-tags", "Invalid tags", err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = problem_response(self.status, &self.problem());
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"shadowbox\""),
            );
        }
        response
    }
}

fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let body = serde_json::to_vec(problem).expect("a problem always serializes");
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body,
    )
        .into_response()
}

/// The fallback for paths no route matches.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// Largest plain-text rejection body kept as a problem's `detail`.
const MAX_DETAIL_BYTES: usize = 4096;

/// Rewrites every 4xx/5xx response that is not already a problem (axum's
/// rejections, its 405, the body limit's 413) into one, keeping its status
/// and headers (`Allow` on a 405). A client error's plain-text body, which
/// axum writes for the client, becomes the `detail`; a server error's body
/// is never shown.
pub async fn bare_errors_to_problems(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !is_error || is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let is_text = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    let reason = status.canonical_reason().unwrap_or("Error");
    let detail = match (
        status.is_client_error() && is_text,
        to_bytes(body, MAX_DETAIL_BYTES).await,
    ) {
        (true, Ok(text)) if !text.is_empty() => String::from_utf8_lossy(&text).into_owned(),
        _ => reason.to_owned(),
    };
    let problem = Problem {
        problem_type: "about:blank".to_owned(),
        title: reason.to_owned(),
        status: status.as_u16(),
        detail,
    };
    let rewritten = problem_response(status, &problem);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, rewritten.into_body())
}

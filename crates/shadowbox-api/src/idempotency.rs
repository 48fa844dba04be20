//! `Idempotency-Key` on writes (device registration, desired PATCH/PUT,
//! rollout creation): a retry with the same key, method, path and body
//! within 24 hours gets the first answer again, with `Idempotent-Replayed:
//! true`, and writes nothing; the same key on another request answers 422.
//! Keys are per tenant.
//!
//! A write route takes its body through [`Idempotent`], which reads the
//! key (400 when malformed) and fingerprints the request, then hands the
//! body to the usual extractor. The handler claims the key in the
//! transaction of its write and answers through [`Pending::commit`], which
//! stores the answer in that same transaction:
//!
//! ```ignore
//! let mut tx = state.pool.begin().await?;
//! let pending = match key.claim(&mut tx, &tenant).await? {
//!     Claimed::Replay(answer) => return Ok(answer),
//!     Claimed::Fresh(pending) => pending,
//! };
//! // ... the write, in `tx` ...
//! pending.commit(tx, response).await
//! ```
//!
//! The storage and its concurrency rules are `shadowbox_db::idempotency`.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shadowbox_core::TenantId;
use shadowbox_core::idempotency::{HEADER, IdempotencyKey, REPLAYED_HEADER, fingerprint};
use shadowbox_db::idempotency::{Claim, StoredAnswer, claim, record};
use sqlx::PgConnection;
use sqlx::postgres::PgTransaction;

use crate::problem::ApiError;

/// The answer headers a replay repeats; the others (date, request id)
/// belong to each response.
const REPLAYED_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::ETAG, header::LOCATION];

/// A write's body, extracted by `J`, with the request's idempotency key.
pub(crate) struct Idempotent<J> {
    /// The key, to claim in the write's transaction.
    pub key: KeyedRequest,
    /// The body.
    pub body: J,
}

/// The request's key and fingerprint, or nothing when it sent no key.
pub(crate) struct KeyedRequest(Option<(IdempotencyKey, [u8; 32])>);

impl<S, J> FromRequest<S> for Idempotent<J>
where
    S: Send + Sync,
    J: FromRequest<S>,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let mut values = request.headers().get_all(HEADER).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => {
                let body = J::from_request(request, state)
                    .await
                    .map_err(IntoResponse::into_response)?;
                return Ok(Self {
                    key: KeyedRequest(None),
                    body,
                });
            }
            (Some(value), None) => value,
            (Some(_), Some(_)) => {
                return Err(
                    ApiError::bad_request(format!("send one {HEADER} per request")).into_response(),
                );
            }
        };
        let key = IdempotencyKey::parse(value.as_bytes())
            .map_err(|e| ApiError::bad_request(format!("{HEADER} {e}")).into_response())?;
        let (parts, body) = request.into_parts();
        // Read through `Bytes` so the body limit applies as it does to `J`.
        let mut reading = Request::new(body);
        *reading.extensions_mut() = parts.extensions.clone();
        let bytes = Bytes::from_request(reading, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let print = fingerprint(parts.method.as_str(), parts.uri.path(), &bytes);
        let body = J::from_request(Request::from_parts(parts, Body::from(bytes)), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            key: KeyedRequest(Some((key, print))),
            body,
        })
    }
}

/// What a claim found.
pub(crate) enum Claimed {
    /// Answer this (the first answer to the same request) and write nothing.
    Replay(Response),
    /// Write, then answer through [`Pending::commit`].
    Fresh(Pending),
}

impl KeyedRequest {
    /// Claims the key in the write's transaction `tx` for `tenant`; waits
    /// while a concurrent request holds it. 422 when the key was used for
    /// another request.
    pub async fn claim(
        self,
        tx: &mut PgConnection,
        tenant: &TenantId,
    ) -> Result<Claimed, ApiError> {
        let Some((key, print)) = self.0 else {
            return Ok(Claimed::Fresh(Pending(None)));
        };
        match claim(tx, tenant, &key, &print).await? {
            Claim::Claimed => Ok(Claimed::Fresh(Pending(Some((tenant.clone(), key))))),
            Claim::Replay(answer) => Ok(Claimed::Replay(replay(answer))),
            Claim::Mismatch => Err(ApiError::idempotency_key_reused(format!(
                "{HEADER} {key} was used for another request (method, path or body) in the last 24 hours"
            ))),
        }
    }
}

/// A claimed key (or none) whose answer is still to be given.
#[must_use = "answer through Pending::commit, which commits the write"]
pub(crate) struct Pending(Option<(TenantId, IdempotencyKey)>);

impl Pending {
    /// Stores `response` as the key's answer, commits `tx` (the write and
    /// the answer together) and returns the response.
    pub async fn commit(
        self,
        mut tx: PgTransaction<'_>,
        response: impl IntoResponse,
    ) -> Result<Response, ApiError> {
        let response = response.into_response();
        let Some((tenant, key)) = self.0 else {
            tx.commit().await?;
            return Ok(response);
        };
        let (parts, body) = response.into_parts();
        let body = to_bytes(body, usize::MAX)
            .await
            .map_err(|e| ApiError::internal("buffer an answer to store", &e))?;
        let headers = REPLAYED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect();
        let answer = StoredAnswer {
            status: parts.status.as_u16(),
            headers,
            body: body.to_vec(),
        };
        record(&mut tx, &tenant, &key, &answer).await?;
        tx.commit().await?;
        Ok(Response::from_parts(parts, Body::from(body)))
    }
}

/// The stored answer as a response, marked as replayed.
fn replay(answer: StoredAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

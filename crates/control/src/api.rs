//! A small HTTP API over a set of inference services: predictions and Prometheus metrics. The serving tests use
//! it; an agent serves the same two routes for the services it runs, with these answers. The API of a whole running
//! application, with its web interface, is the `stratum-api` crate.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/services/{name}/predict` | one JSON object or an array of them, answered with predictions |
//! | `GET /metrics` | every component's standard metrics and every service's request latency histogram |

use crate::serving::{ErrorCode, ServicePool};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use stratum_dataplane::metrics::Registry;

/// What the two routes serve: the services by name, and the metrics.
pub struct ServicesApi {
    /// The services, by name.
    pub services: BTreeMap<String, Arc<ServicePool>>,
    /// Every component's metrics.
    pub metrics: Arc<Registry>,
}

/// The two routes over `state`.
pub fn router(state: Arc<ServicesApi>) -> axum::Router {
    axum::Router::new()
        .route("/v1/services/{name}/predict", post(predict))
        .route("/metrics", get(metrics))
        .with_state(state)
}

pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Whether a token given is the one expected, compared in time that does not depend on where they differ.
pub fn same_token(given: &str, expected: &str) -> bool {
    stratum_core::bytes::same_secret(given.as_bytes(), expected.as_bytes())
}

/// `bytes` random bytes in hex: tokens, agents' keys.
pub fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut random = vec![0u8; bytes];
    getrandom::fill(&mut random)?;
    Ok(stratum_core::bytes::hex(&random))
}

/// An error as every Stratum API answers one: `{"error": {"code": …, "message": …}}`.
pub fn error_response(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    json_response(status, json!({ "error": { "code": code, "message": message.into() } }))
}

async fn predict(State(state): State<Arc<ServicesApi>>, Path(name): Path<String>, body: Bytes) -> Response {
    match state.services.get(&name) {
        Some(service) => prediction_response(service.predict(&body).await),
        None => prediction_response(Err(crate::serving::unknown_service(&name, state.services.keys()))),
    }
}

/// A service's answer as an HTTP response: the predictions, or the refusal with its status and `Retry-After`.
pub fn prediction_response(answer: Result<Value, crate::serving::Refusal>) -> Response {
    match answer {
        Ok(answer) => json_response(StatusCode::OK, answer),
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = error_response(status, refusal.code(), refusal.message);
            if let Some(seconds) = refusal.retry_after_seconds {
                response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            }
            response
        }
    }
}

async fn metrics(State(state): State<Arc<ServicesApi>>) -> Response {
    let mut text = state.metrics.render_prometheus();
    text.push_str(&crate::serving::render_pools(state.services.values()));
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

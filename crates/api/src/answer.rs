//! How the API answers: JSON bodies, and error answers with a status, a stable code ([`ErrorCode`]), a message for
//! people and when to try again.

use crate::views::{ErrorBody, ErrorDetail};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stratum_control::serving::ErrorCode;
use stratum_control::serving::Refusal;

/// An error answer: its status, a stable code, a message for people, and when to try again.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    retry_after_seconds: Option<u32>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after_seconds: None }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    /// A failure on the server's side (an error, or a sentence saying what failed); the caller reads it with its
    /// causes as the answer's message.
    pub(crate) fn internal(failure: impl Into<stratum_core::Cause>) -> ApiError {
        let message = stratum_core::error_chain(&*failure.into());
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, message)
    }

    pub(crate) fn retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after_seconds = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        let mut response = json(self.status, &body);
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

/// A service's or the control plane's refusal, with its status and when to try again.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut error = ApiError::new(status, refusal.code(), refusal.message);
        error.retry_after_seconds = refusal.retry_after_seconds;
        error
    }
}

pub(crate) type Answer = Result<Response, ApiError>;

pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(failure) => ApiError::internal(failure).into_response(),
    }
}

pub(crate) fn ok<T: Serialize>(body: &T) -> Answer {
    Ok(json(StatusCode::OK, body))
}

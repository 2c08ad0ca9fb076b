//! API errors in Bacalhau's error body shape.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shoal_orchestrator::OrchestratorError;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    hint: Option<&'static str>,
    reason: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            hint: None,
            reason: None,
        }
    }

    /// A 400 with a message that says how to fix the request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// A 500 for a failure that is the server's, not the request's.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// Bacalhau's 401: message `Request Unauthorized`, its hint, and why in `Details.Reason`.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        ApiError {
            hint: Some("Unauthorized principal. Event has been recorded."),
            reason: Some(reason.into()),
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Request Unauthorized",
            )
        }
    }

    /// Bacalhau's 403: message `Request Forbidden`, its hint, and why in `Details.Reason`.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        ApiError {
            hint: Some("Check if user have access to this resource. Event has been recorded."),
            reason: Some(reason.into()),
            ..ApiError::new(StatusCode::FORBIDDEN, "Forbidden", "Request Forbidden")
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason behind a 401 or 403, else the message: what the audit log keeps.
    pub fn reason(&self) -> &str {
        self.reason.as_deref().unwrap_or(&self.message)
    }
}

impl From<OrchestratorError> for ApiError {
    fn from(e: OrchestratorError) -> Self {
        let (status, code) = match &e {
            OrchestratorError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            OrchestratorError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            OrchestratorError::Conflict(_) => (StatusCode::CONFLICT, "ResourceInUse"),
            OrchestratorError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
            }
            OrchestratorError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "DatastoreFailure"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// Set on a 401/403 answer made by a handler (e.g. a job that needs the `exec` grant), so the
/// audit entry says why, as it does for the gate's own refusals.
#[derive(Debug, Clone)]
pub(crate) struct DeniedBecause(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "Status": self.status.as_u16(),
            "Message": self.message,
            "Code": self.code,
            "Component": "Orchestrator",
            "RequestID": "",
        });
        if let Some(hint) = self.hint {
            body["Hint"] = hint.into();
        }
        let denial = self
            .reason
            .as_ref()
            .filter(|_| matches!(self.status.as_u16(), 401 | 403))
            .map(|r| DeniedBecause(r.clone()));
        if let Some(reason) = self.reason {
            body["Details"] = json!({ "Reason": reason });
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(d) = denial {
            response.extensions_mut().insert(d);
        }
        response
    }
}

pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no API endpoint at {}; this server speaks Bacalhau's v1 API under /api/v1 (is the client newer than the server?)",
        uri.path()
    ))
}

/// `Query<T>` whose rejection is answered in Bacalhau's error body, like every other error.
pub(crate) struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::bad_request(format!("bad query string: {}", e.body_text())))
    }
}

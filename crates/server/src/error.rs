//! OpenAI-style JSON errors: `{"error": {"message", "type", "param", "code"}}` with the HTTP status the
//! OpenAI API uses for the same failure (400 bad request, 401 bad key, 404 unknown model, 429 busy, 500
//! server), so clients (the `openai` Python package, our runner) raise their usual exception types.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use ttc_contract::BackendError;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `server_error`.
    pub kind: &'static str,
    /// OpenAI's `code`: `model_not_found`, `context_length_exceeded`, `invalid_api_key`, ...
    pub code: Option<&'static str>,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// Seconds for the `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: None,
            param: param.map(str::to_string),
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    pub fn unknown_model(model: &str, known: &[String]) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("The model `{model}` does not exist. Models served here: {}", known.join(", ")),
            kind: "invalid_request_error",
            code: Some("model_not_found"),
            param: Some("model".into()),
            retry_after: None,
        }
    }

    pub fn unauthorized(message: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            kind: "invalid_request_error",
            code: Some("invalid_api_key"),
            param: None,
            retry_after: None,
        }
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no route {path}; this server has POST /v1/chat/completions, GET /v1/models, GET /health"),
            kind: "invalid_request_error",
            code: Some("unknown_url"),
            param: None,
            retry_after: None,
        }
    }

    /// A route that exists, asked with a method it does not take (the `Allow` header lists the right one).
    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("Invalid method for URL ({method} {path}); see the Allow header for the methods it takes"),
            kind: "invalid_request_error",
            code: Some("method_not_allowed"),
            param: None,
            retry_after: None,
        }
    }

    /// The admission queue is full: OpenAI's rate-limit shape, so clients back off and retry.
    pub fn queue_full(waiting: usize) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "the server is busy: {waiting} requests are already waiting for the engine (--max-queue); retry later"
            ),
            kind: "requests",
            code: Some("rate_limit_exceeded"),
            param: None,
            retry_after: Some(1),
        }
    }

    pub fn server(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            code: None,
            param: None,
            retry_after: None,
        }
    }

    /// A failed generation: requests the engine refuses are the client's fault (400), the rest ours (500).
    pub fn from_backend(e: &BackendError) -> ApiError {
        match e {
            BackendError::InvalidRequest(m) => ApiError::bad_request(m.clone(), None),
            other => ApiError::server(other.to_string()),
        }
    }

    /// The error without its message, which may quote the request (a JSON error's excerpt, an unknown model or
    /// role): its type, code and field, e.g. `invalid_request_error (code context_length_exceeded, param
    /// messages)`. What a served record keeps without `--store-content`.
    pub fn summary(&self) -> String {
        let mut details = Vec::new();
        if let Some(c) = self.code {
            details.push(format!("code {c}"));
        }
        if let Some(p) = &self.param {
            details.push(format!("param {p}"));
        }
        if details.is_empty() {
            self.kind.to_string()
        } else {
            format!("{} ({})", self.kind, details.join(", "))
        }
    }

    /// The JSON body (also sent as an SSE `data:` event when a stream fails after its headers).
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        r
    }
}

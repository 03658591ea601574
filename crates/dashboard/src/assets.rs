//! The page: one HTML file, one script, one stylesheet, compiled into the binary (no CDN, works offline).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    // The assets change only with the binary; no-cache makes a rebuilt dashboard show up on reload.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

pub async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

pub async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

pub async fn style_css() -> Response {
    asset(STYLE_CSS, "text/css; charset=utf-8")
}

pub async fn not_found(uri: axum::http::Uri) -> Response {
    (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "error": format!("no such page or API: {}", uri.path()) })))
        .into_response()
}

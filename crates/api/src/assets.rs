//! The web interface's files, compiled into the binary: `GET /` is the single page, `/ui/…` its script, styles
//! and the vendored libraries (web/vendor/README.md says which, at which versions). Nothing is fetched from
//! elsewhere, so the interface works without any network beyond the control plane.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use stratum_control::serving::ErrorCode;

/// (path under /ui/, media type, content).
const FILES: &[(&str, &str, &[u8])] = &[
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../web/app.js")),
    ("app.css", "text/css; charset=utf-8", include_bytes!("../web/app.css")),
    ("stratum-mode.js", "text/javascript; charset=utf-8", include_bytes!("../web/stratum-mode.js")),
    (
        "vendor/codemirror-5.65.21/codemirror.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/codemirror-5.65.21/codemirror.js"),
    ),
    (
        "vendor/codemirror-5.65.21/codemirror.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/vendor/codemirror-5.65.21/codemirror.css"),
    ),
    (
        "vendor/codemirror-5.65.21/simple.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/codemirror-5.65.21/simple.js"),
    ),
    (
        "vendor/codemirror-5.65.21/lint.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/codemirror-5.65.21/lint.js"),
    ),
    (
        "vendor/codemirror-5.65.21/lint.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/vendor/codemirror-5.65.21/lint.css"),
    ),
    (
        "vendor/uplot-1.6.32/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/uplot-1.6.32/uPlot.iife.min.js"),
    ),
    (
        "vendor/uplot-1.6.32/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/vendor/uplot-1.6.32/uPlot.min.css"),
    ),
];

const INDEX: &[u8] = include_bytes!("../web/index.html");

/// Adds the interface's routes to the API's router.
pub(crate) fn add(router: axum::Router<Arc<crate::plane::ApiState>>) -> axum::Router<Arc<crate::plane::ApiState>> {
    router.route("/", get(index)).route("/ui/{*path}", get(file))
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page loads only what this server serves.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        INDEX,
    )
        .into_response()
}

async fn file(Path(path): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == path) {
        Some((_, media_type, content)) => ([(header::CONTENT_TYPE, *media_type)], *content).into_response(),
        None => crate::answer::ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("no file /ui/{path}"))
            .into_response(),
    }
}

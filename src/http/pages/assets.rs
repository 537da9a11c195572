//! Static files compiled into the binary: the stylesheet, the upload
//! progress script and the icon.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// A static asset compiled into the binary, cacheable (it holds no patient data).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../static/style.css"),
    )
}

pub(super) async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../static/upload.js"),
    )
}

pub(super) async fn favicon() -> Response {
    asset("image/svg+xml", include_str!("../static/favicon.svg"))
}

//! Pages, scripts and the vendored libraries, compiled into the binary.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::error_response;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Everything under `/assets/`: (name, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    ("common.js", JS, include_bytes!("assets/common.js")),
    ("style.css", CSS, include_bytes!("assets/style.css")),
    ("dashboard.js", JS, include_bytes!("assets/dashboard.js")),
    ("obs.js", JS, include_bytes!("assets/obs.js")),
    ("alerts.js", JS, include_bytes!("assets/alerts.js")),
    ("hype.js", JS, include_bytes!("assets/hype.js")),
    (
        "uplot.min.js",
        JS,
        include_bytes!("assets/vendor/uplot.min.js"),
    ),
    (
        "uplot.min.css",
        CSS,
        include_bytes!("assets/vendor/uplot.min.css"),
    ),
    (
        "uplot.LICENSE",
        TEXT,
        include_bytes!("assets/vendor/uplot.LICENSE"),
    ),
    (
        "mqtt.min.js",
        JS,
        include_bytes!("assets/vendor/mqtt.min.js"),
    ),
    (
        "mqtt.LICENSE.md",
        TEXT,
        include_bytes!("assets/vendor/mqtt.LICENSE.md"),
    ),
];

fn page(html: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HTML),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

pub async fn dashboard() -> Response {
    page(include_str!("assets/index.html"))
}

pub async fn alerts() -> Response {
    page(include_str!("assets/alerts.html"))
}

pub async fn hype() -> Response {
    page(include_str!("assets/hype.html"))
}

pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        // Names carry no version, so browsers revalidate rather than keep a stale script.
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
        None => error_response(StatusCode::NOT_FOUND, format!("no asset named {name:?}")),
    }
}

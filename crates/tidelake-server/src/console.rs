//! The web console's assets: plain HTML, CSS and JavaScript under
//! `console/`, built into the binary with `include_str!` (no build step, no
//! external service at run time). `GET /` and `GET /console/` answer the
//! page, `GET /console/{file}` the rest. The console talks to the server
//! only through the HTTP API (`/v1/statements`, `/v1/status`, `/metrics`
//! when it exists), with the same credentials as any client.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::Shared;

/// Every asset: its file name, content type and bytes.
const ASSETS: [(&str, &str, &str); 12] = [
    ("index.html", HTML, include_str!("../console/index.html")),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../console/console.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../console/icon.svg"),
    ),
    ("app.js", JS, include_str!("../console/app.js")),
    ("api.js", JS, include_str!("../console/api.js")),
    ("sql.js", JS, include_str!("../console/sql.js")),
    ("grid.js", JS, include_str!("../console/grid.js")),
    ("chart.js", JS, include_str!("../console/chart.js")),
    ("editor.js", JS, include_str!("../console/editor.js")),
    ("catalog.js", JS, include_str!("../console/catalog.js")),
    ("jobs.js", JS, include_str!("../console/jobs.js")),
    ("health.js", JS, include_str!("../console/health.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Only the console's own files and the server's API: no inline script,
/// no other origin.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(index))
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/{file}", get(asset))
}

async fn index() -> Response {
    serve_file("index.html")
}

async fn asset(Path(file): Path<String>) -> Response {
    serve_file(&file)
}

fn serve_file(name: &str) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("the console has no file {name:?}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_and_scripts_name_is_served() {
        let names: Vec<&str> = ASSETS.iter().map(|(n, _, _)| *n).collect();
        let mut on_disk: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/console"))
                .expect("the console folder")
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
        on_disk.sort();
        let mut served: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        served.sort();
        assert_eq!(on_disk, served, "console/ and ASSETS list different files");
        for (name, _, body) in ASSETS {
            for (at, _) in body.match_indices("./") {
                let rest = &body[at + 2..];
                let end = rest.find(['"', '\'']).unwrap_or(rest.len());
                let target = &rest[..end];
                if target.ends_with(".js") {
                    assert!(
                        names.contains(&target),
                        "{name} imports {target}, which is not served"
                    );
                }
            }
            for (at, _) in body.match_indices("/console/") {
                let rest = &body[at + 9..];
                let end = rest.find(['"', '\'']).unwrap_or(rest.len());
                let target = &rest[..end];
                assert!(
                    names.contains(&target),
                    "{name} links /console/{target}, which is not served"
                );
            }
        }
    }

    #[test]
    fn an_unknown_file_is_not_found() {
        assert_eq!(serve_file("nope.js").status(), StatusCode::NOT_FOUND);
        assert_eq!(serve_file("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(serve_file("app.js").status(), StatusCode::OK);
    }
}

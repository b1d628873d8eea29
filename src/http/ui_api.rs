//! `/ui`: the web console, static files embedded in the binary (no build step). Setting
//! `VECTORD_UI_DIR` serves them from that directory instead, to work on the console
//! without rebuilding.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::errors::ApiError;

/// (name, content type, embedded bytes)
const FILES: [(&str, &str, &str); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("ui/style.css"),
    ),
];

async fn file(path: Option<web::Path<String>>) -> Result<HttpResponse, ApiError> {
    let name = path.map_or_else(|| "index.html".to_string(), |p| p.into_inner());
    let name = if name.is_empty() {
        "index.html".to_string()
    } else {
        name
    };
    let Some((name, content_type, embedded)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no console file {name:?}"),
        ));
    };
    let body = match std::env::var_os("VECTORD_UI_DIR") {
        Some(dir) => std::fs::read_to_string(std::path::Path::new(&dir).join(name))
            .unwrap_or_else(|_| embedded.to_string()),
        None => embedded.to_string(),
    };
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ui", web::get().to(|| file(None)))
        .route("/ui/", web::get().to(|| file(None)))
        .route(
            "/ui/{file}",
            web::get().to(|p: web::Path<String>| file(Some(p))),
        );
}

//! `GET /static/{path}`: the files compiled into the binary (`assets.rs`),
//! under content-hashed URLs.

use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::AppError;
use crate::state::AppState;

pub async fn serve(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let file = state.assets.find(&path).ok_or(AppError::NotFound)?;
    let cache = if file.current {
        "public, max-age=31536000, immutable"
    } else {
        // Outdated or missing hash: serve the current file, but make the
        // browser check again next time instead of keeping it for a year.
        "public, no-cache"
    };
    let not_modified = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == file.etag));
    let mut builder = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    builder
        .insert_header((CACHE_CONTROL, cache))
        .insert_header((ETAG, file.etag.clone()))
        .insert_header((CONTENT_TYPE, file.content_type));
    if file.gzip.is_some() {
        builder.insert_header((VARY, "Accept-Encoding"));
    }
    Ok(if not_modified {
        builder.finish()
    } else if let Some(gzip) = file.gzip.filter(|_| crate::web::accepts_gzip(&req)) {
        builder
            .insert_header((CONTENT_ENCODING, "gzip"))
            .body(gzip.to_vec())
    } else {
        builder.body(file.data.to_vec())
    })
}

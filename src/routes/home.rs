//! `GET /`: the start page.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use crate::error::AppError;
use crate::web::PageCtx;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    ctx: PageCtx,
}

pub async fn get(ctx: PageCtx) -> Result<HttpResponse, AppError> {
    // The same for every visitor: compressed once (crate::compress).
    let page = HomePage { ctx };
    page.ctx.render_spliced(StatusCode::OK, &page, &[])
}

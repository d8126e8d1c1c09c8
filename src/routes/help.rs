//! The help centre: why registration fails and what to do.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use crate::errors::AppError;
#[allow(unused_imports)] // used by the templates' `match`
use crate::i18n::Lang;
use crate::web::PageCtx;

#[derive(Template)]
#[template(path = "help/index.html")]
struct HelpPage {
    ctx: PageCtx,
}

#[derive(Template)]
#[template(path = "help/email_registered.html")]
struct EmailRegisteredPage {
    ctx: PageCtx,
}

#[derive(Template)]
#[template(path = "help/connection.html")]
struct ConnectionPage {
    ctx: PageCtx,
}

/// `GET /help`.
pub async fn index(ctx: PageCtx) -> Result<HttpResponse, AppError> {
    let page = HelpPage { ctx };
    page.ctx.render(StatusCode::OK, &page)
}

/// `GET /help/email-registered`.
pub async fn email_registered(ctx: PageCtx) -> Result<HttpResponse, AppError> {
    let page = EmailRegisteredPage { ctx };
    page.ctx.render(StatusCode::OK, &page)
}

/// `GET /help/connection`.
pub async fn connection(ctx: PageCtx) -> Result<HttpResponse, AppError> {
    let page = ConnectionPage { ctx };
    page.ctx.render(StatusCode::OK, &page)
}

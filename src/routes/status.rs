//! `GET /status`: the public status page. Served from the judgement in
//! memory (`services::status::Board`, refreshed every few seconds by
//! `worker::run_status`): no database work, however many ask.

use actix_web::http::StatusCode;
use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::clock::wib_text;
use crate::error::AppError;
use crate::services::status::{Level, Part};
use crate::state::AppState;
use crate::web::PageCtx;

pub struct PartLine {
    pub name: &'static str,
    pub level: &'static str,
    pub css: &'static str,
    pub since: String,
    pub hint: &'static str,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    ctx: PageCtx,
    parts: Vec<PartLine>,
    checked: String,
    /// (text, posted at) of the notice on.
    notice: Option<(String, String)>,
    mail_late: bool,
}

pub async fn get(ctx: PageCtx, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let s = state.status.snapshot();
    let t = ctx.t;
    let line = |name: &'static str, part: Part| PartLine {
        name,
        level: part.level.label(t),
        css: part.level.css(),
        since: wib_text(part.since),
        hint: part.level.hint(t),
    };
    let page = StatusPage {
        parts: vec![
            line(t.status_part_signup, s.signup),
            line(t.status_part_mail, s.mail),
            line(t.status_part_signin, s.signin),
        ],
        checked: wib_text(s.checked_at),
        notice: s.notice.map(|n| {
            let text = match ctx.lang {
                crate::i18n::Lang::Id => n.text_id,
                crate::i18n::Lang::En => n.text_en,
            };
            (text, wib_text(n.started_at))
        }),
        mail_late: s.mail.level != Level::Normal,
        ctx,
    };
    let mut response = page.ctx.render(StatusCode::OK, &page)?;
    // A few seconds in any cache in front: what the board holds anyway.
    response.headers_mut().insert(
        CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("public, max-age=2"),
    );
    Ok(response)
}

//! `POST /register/remind`: "which address did I use?". The NIK comes from
//! the session (set where the page said the NIK is already registered:
//! the 409 answer and the link page), never from the form, so the button
//! mails only about a NIK this browser was just told about.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::domain::Nik;
use crate::error::AppError;
use crate::services::reminder::{self, Reminded};
use crate::web::{Page, PageCtx};

#[derive(Deserialize)]
pub struct RemindForm {
    #[serde(default)]
    csrf_token: String,
}

#[derive(Template)]
#[template(path = "register/reminded.html")]
struct RemindedPage {
    ctx: PageCtx,
    title: &'static str,
    body: &'static str,
    is_error: bool,
    masked_email: Option<String>,
}

pub async fn remind(
    Page(req, ctx, session, state): Page,
    form: web::Form<RemindForm>,
) -> Result<HttpResponse, AppError> {
    let t = ctx.t;
    let today = state.clock.today_in_indonesia();
    let nik = crate::session::remind_nik(&session).and_then(|n| Nik::parse(&n, today).ok());
    let Some(nik) = nik.filter(|_| crate::session::csrf_valid(&session, &form.csrf_token)) else {
        // No NIK this browser was told about (a page left open for hours, or
        // a form posted from elsewhere): nothing is sent.
        let page = RemindedPage {
            ctx,
            title: t.remind_stale_title,
            body: t.remind_stale_body,
            is_error: true,
            masked_email: None,
        };
        return page.ctx.render(StatusCode::BAD_REQUEST, &page);
    };
    let client = crate::web::client(&req, &state);
    let reminded = reminder::remind(
        &state.services(),
        &client,
        &nik,
        ctx.lang,
        state.clock.now(),
    )
    .await?;
    let safe = state.settings.enumeration_safe;
    let reminded = match reminded {
        // The page is the same whatever happened.
        _ if safe => Reminded::Sent {
            masked_email: String::new(),
        },
        other => other,
    };
    let page = match reminded {
        Reminded::Sent { masked_email } => RemindedPage {
            ctx,
            title: t.remind_sent_title,
            body: t.remind_sent_body,
            is_error: false,
            masked_email: (!masked_email.is_empty()).then_some(masked_email),
        },
        Reminded::NoAccount => RemindedPage {
            ctx,
            title: t.remind_none_title,
            body: t.remind_none_body,
            is_error: false,
            masked_email: None,
        },
    };
    page.ctx.render(StatusCode::OK, &page)
}

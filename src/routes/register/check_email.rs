//! `GET /register/check-email`: where the link went, how long it lasts, a
//! resend button and a way to correct the address.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::domain::Problem;
use crate::error::AppError;
use crate::web::PageCtx;

#[derive(Deserialize)]
pub struct Query {
    notice: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
}

#[derive(Template)]
#[template(path = "register/check_email.html")]
pub struct CheckEmailPage {
    pub ctx: PageCtx,
    pub csrf: String,
    /// The address the citizen typed, in full (it is their own session:
    /// a typo must be visible), also posted back by the resend button.
    pub email: Option<String>,
    /// The address with a common provider's domain, when it looks mistyped.
    pub suggestion: Option<String>,
    pub notice: &'static str,
    pub hours: u32,
    pub cooldown_secs: u32,
    pub email_error: Option<&'static str>,
    pub typed_email: String,
    pub reference: Option<String>,
}

pub async fn get(
    ctx: PageCtx,
    session: Session,
    query: web::Query<Query>,
    state: web::Data<crate::state::AppState>,
) -> Result<HttpResponse, AppError> {
    let notice = match query.notice.as_deref() {
        Some("replaced") => ctx.t.ce_replaced_notice,
        Some("cooldown") => ctx.t.ce_cooldown_notice,
        Some("resent") => ctx.t.ce_resent_notice,
        Some("sent") => ctx.t.ce_sent_again_notice,
        Some("stale") => ctx.t.stale_retry,
        _ => "",
    };
    // Only a well-formed code is echoed back.
    let reference = query
        .reference
        .clone()
        .filter(|r| r.len() == 13 && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    render(
        ctx,
        &session,
        &state,
        notice,
        None,
        String::new(),
        StatusCode::OK,
        reference,
    )
}

#[allow(clippy::too_many_arguments)]
pub fn render(
    ctx: PageCtx,
    session: &Session,
    state: &crate::state::AppState,
    notice: &'static str,
    email_problem: Option<Problem>,
    typed_email: String,
    status: StatusCode,
    reference: Option<String>,
) -> Result<HttpResponse, AppError> {
    let email = crate::session::pending_email(session);
    let suggestion = email
        .as_deref()
        .and_then(|e| crate::domain::Email::parse(e).ok())
        .and_then(|e| e.suggestion());
    let page = CheckEmailPage {
        suggestion,
        csrf: crate::session::csrf_token(session),
        email,
        notice,
        hours: state.settings.verify_token_ttl_hours,
        cooldown_secs: state.settings.resend_cooldown_secs,
        email_error: email_problem.map(|p| p.text(ctx.lang)),
        typed_email,
        reference,
        ctx,
    };
    page.ctx.render(status, &page)
}

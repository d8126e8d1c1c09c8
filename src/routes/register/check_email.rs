//! `GET /register/check-email`: where the link went, how long it lasts, a
//! resend button and a way to correct the address.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::domain::Problem;
use crate::error::AppError;
use crate::web::{Page, PageCtx};

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
    /// Mail to the address bounced for good: say so and offer to correct it.
    pub bounced: bool,
}

pub async fn get(
    Page(_, ctx, session, state): Page,
    query: web::Query<Query>,
) -> Result<HttpResponse, AppError> {
    let notice = match query.notice.as_deref() {
        Some("replaced") => ctx.t.ce_replaced_notice,
        Some("cooldown") => ctx.t.ce_cooldown_notice,
        Some("resent") => ctx.t.ce_resent_notice,
        Some("sent") => ctx.t.ce_sent_again_notice,
        Some("stale") => ctx.t.stale_retry,
        Some("corrected") => ctx.t.ce_corrected_notice,
        Some("bounced") => ctx.t.ce_bounced_notice,
        Some("correct_taken") => ctx.t.ce_correct_taken,
        Some("correct_nothing") => ctx.t.ce_correct_nothing,
        _ => "",
    };
    let bounced = match crate::session::pending_email(&session) {
        Some(email) => {
            crate::services::mail_events::undeliverable(&state.services(), &email).await?
        }
        None => false,
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
        bounced,
    )
}

#[derive(Deserialize)]
pub struct CorrectForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
}

/// `POST /register/correct-email`: after mail to this browser's pending
/// address bounced, the registration moves to the address typed here.
pub async fn correct(
    Page(req, ctx, session, state): Page,
    form: web::Form<CorrectForm>,
) -> Result<HttpResponse, AppError> {
    use crate::services::verification::{self, CorrectOutcome};
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return Ok(crate::web::see_other("/register/check-email?notice=stale"));
    }
    let Some(old) =
        crate::session::pending_email(&session).and_then(|e| crate::domain::Email::parse(&e).ok())
    else {
        return Ok(crate::web::see_other(
            "/register/check-email?notice=correct_nothing",
        ));
    };
    let new = match crate::domain::Email::parse(&form.email) {
        Ok(new) => new,
        Err(problem) => {
            return render(
                ctx,
                &session,
                &state,
                "",
                Some(problem),
                form.email.clone(),
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                true,
            );
        }
    };
    let client = crate::web::client(&req, &state);
    let outcome = verification::correct_email(
        &state.services(),
        &client,
        &old,
        &new,
        ctx.lang,
        state.clock.now(),
    )
    .await?;
    Ok(crate::web::see_other(match outcome {
        CorrectOutcome::Corrected => {
            crate::session::set_pending_email(&session, new.as_str());
            "/register/check-email?notice=corrected"
        }
        CorrectOutcome::NewTaken => "/register/check-email?notice=correct_taken",
        CorrectOutcome::NothingWaiting => "/register/check-email?notice=correct_nothing",
    }))
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
    bounced: bool,
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
        bounced,
        ctx,
    };
    page.ctx.render(status, &page)
}

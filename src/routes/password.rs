//! Password reset by email: `GET/POST /password/forgot`,
//! `GET /password/reset?token=...`, `POST /password/reset`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::domain::Email;
use crate::error::AppError;
use crate::services::accounts::{self, Reset};
use crate::services::failures::{Failure, reason};
use crate::state::AppState;
use crate::web::see_other;
use crate::web::{Page, PageCtx};

const SENT_KEY: &str = "reset_sent_to";

#[derive(Template)]
#[template(path = "password/forgot.html")]
struct ForgotPage {
    ctx: PageCtx,
    csrf: String,
    email: String,
    error: Option<&'static str>,
    stale: bool,
    /// After a request: the masked address, and the link lifetime.
    sent_to: Option<String>,
    minutes: u32,
    reference: Option<String>,
}

#[derive(Deserialize)]
pub struct ForgotQuery {
    sent: Option<String>,
}

pub async fn forgot_get(
    Page(_, ctx, session, state): Page,
    query: web::Query<ForgotQuery>,
) -> Result<HttpResponse, AppError> {
    let sent_to = query
        .sent
        .as_ref()
        .and_then(|_| session.get::<String>(SENT_KEY).ok().flatten());
    let page = ForgotPage {
        csrf: crate::session::csrf_token(&session),
        email: String::new(),
        error: None,
        stale: false,
        sent_to,
        minutes: state.settings.reset_token_ttl_minutes,
        reference: None,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
}

/// The answer is the same whether or not the address has an account.
pub async fn forgot_post(
    Page(req, ctx, session, state): Page,
    form: web::Form<ForgotForm>,
) -> Result<HttpResponse, AppError> {
    let stale = !crate::session::csrf_valid(&session, &form.csrf_token);
    let parsed = Email::parse(&form.email);
    if stale || parsed.is_err() {
        let (prefix, why, status) = if stale {
            ("STL", reason::STALE_FORM, StatusCode::FORBIDDEN)
        } else {
            ("DFT", reason::VALIDATION, StatusCode::UNPROCESSABLE_ENTITY)
        };
        let failure =
            Failure::new(why)
                .email(&form.email)
                .fields(if stale { vec![] } else { vec!["email"] });
        let reference = crate::web::record_failure(&state, &req, prefix, failure).await;
        let page = ForgotPage {
            csrf: crate::session::csrf_token(&session),
            email: form.email.clone(),
            error: parsed.err().filter(|_| !stale).map(|p| p.text(ctx.lang)),
            stale,
            sent_to: None,
            minutes: state.settings.reset_token_ttl_minutes,
            reference: Some(reference),
            ctx,
        };
        return page.ctx.render(status, &page);
    }
    let email = parsed.expect("checked above");
    accounts::forgot_password(
        &state.services(),
        &crate::web::client(&req, &state),
        &email,
        ctx.lang,
        state.clock.now(),
    )
    .await?;
    let _ = session.insert(SENT_KEY, email.masked());
    Ok(see_other("/password/forgot?sent=1"))
}

#[derive(Template)]
#[template(path = "password/reset.html")]
struct ResetPage {
    ctx: PageCtx,
    csrf: String,
    token: String,
    password_error: Option<&'static str>,
    confirm_error: Option<&'static str>,
    summary: Vec<(&'static str, &'static str)>,
    stale: bool,
    reference: Option<String>,
}

#[derive(Template)]
#[template(path = "password/invalid.html")]
struct InvalidLinkPage {
    ctx: PageCtx,
    reference: String,
}

#[derive(Deserialize)]
pub struct ResetQuery {
    token: Option<String>,
}

async fn invalid_link(
    req: &HttpRequest,
    ctx: PageCtx,
    state: &web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let reference =
        accounts::note_invalid_reset_link(&state.services(), &crate::web::client(req, state)).await;
    let page = InvalidLinkPage { ctx, reference };
    page.ctx.render(StatusCode::GONE, &page)
}

/// `GET /password/reset?token=...`: the new-password form, if the link works.
pub async fn reset_get(
    Page(req, ctx, session, state): Page,
    query: web::Query<ResetQuery>,
) -> Result<HttpResponse, AppError> {
    let token = query.token.clone().unwrap_or_default();
    if accounts::reset_link_account(&state.services(), &token, state.clock.now())
        .await?
        .is_none()
    {
        return invalid_link(&req, ctx, &state).await;
    }
    let page = ResetPage {
        csrf: crate::session::csrf_token(&session),
        token,
        password_error: None,
        confirm_error: None,
        summary: Vec::new(),
        stale: false,
        reference: None,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

/// `POST /password/reset`.
pub async fn reset_post(
    Page(req, ctx, session, state): Page,
    form: web::Form<crate::forms::NewPasswordForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let fresh = crate::session::csrf_valid(&session, &form.csrf_token);
    let outcome = accounts::reset_password(
        &state.services(),
        &crate::web::client(&req, &state),
        &form.token,
        &form.password,
        &form.password_confirm,
        fresh,
        state.clock.now(),
    )
    .await?;
    match outcome {
        Reset::LinkInvalid => invalid_link(&req, ctx, &state).await,
        Reset::Done => {
            crate::session::sign_out(&session);
            Ok(see_other("/login?reset=1"))
        }
        Reset::Again { problem, reference } => {
            let errors = crate::forms::PasswordErrors::new(problem, ctx.lang);
            let page = ResetPage {
                csrf: crate::session::csrf_token(&session),
                token: form.token,
                password_error: errors.password,
                confirm_error: errors.confirm,
                summary: errors.summary,
                stale: !fresh,
                reference,
                ctx,
            };
            let status = if fresh {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::FORBIDDEN
            };
            page.ctx.render(status, &page)
        }
    }
}

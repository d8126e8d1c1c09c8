//! Password reset by email: `GET/POST /password/forgot`,
//! `GET /password/reset?token=...`, `POST /password/reset`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Duration;
use serde::Deserialize;

use crate::db::accounts::{self, NewToken, PURPOSE_RESET};
use crate::domain::{Email, Password, Problem};
use crate::error::AppError;
use crate::failures::{self, Failure, reason};
use crate::state::AppState;
use crate::web::PageCtx;
use crate::web::see_other;

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
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
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
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
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
    if let failures::Allowance::Refused { retry_after_secs } =
        failures::allow_for_client_and_address(
            &state.failure_ctx(),
            &crate::web::client(&req, &state),
            "forgot",
            email.as_str(),
        )
        .await?
    {
        let failure = Failure::new(reason::RATE_LIMITED).email(email.as_str());
        let reference = crate::web::record_failure(&state, &req, "LIM", failure).await;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    let address = email.as_str().to_string();
    let account = state
        .db(move |conn| accounts::find_by_email(conn, &address))
        .await?;
    match account {
        Some(account) => {
            let lang = ctx.lang;
            let settings = state.settings.clone();
            state
                .db(move |conn| -> Result<(), AppError> {
                    let now = crate::db::now();
                    let (token, token_hash) = crate::domain::link_token::new_link_token();
                    let mail = crate::mail::reset_mail(
                        &settings,
                        lang,
                        &account.id,
                        &account.email,
                        &account.full_name,
                        &token,
                        now,
                    )
                    .map_err(AppError::internal)?;
                    let ttl = Duration::minutes(i64::from(settings.reset_token_ttl_minutes));
                    accounts::issue_token(
                        conn,
                        &NewToken {
                            token_hash: &token_hash,
                            account_id: &account.id,
                            purpose: PURPOSE_RESET,
                            created_at: now,
                            expires_at: now + ttl,
                        },
                        &mail,
                    )?;
                    Ok(())
                })
                .await?;
            tracing::info!("password reset link queued");
            state.wake_mailer.notify_one();
        }
        // Not verified yet: what that citizen needs is the verification
        // link (sent only if a registration waits for this address).
        None => {
            crate::services::verification::resend(
                &state.services(),
                &email,
                ctx.lang,
                crate::db::now(),
            )
            .await?;
        }
    }
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

async fn account_for(
    state: &web::Data<AppState>,
    token: &str,
) -> Result<Option<accounts::Account>, AppError> {
    let Some(hash) = crate::domain::link_token::link_token_hash(token) else {
        return Ok(None);
    };
    state
        .db(move |conn| accounts::account_for_token(conn, &hash, PURPOSE_RESET, crate::db::now()))
        .await
}

async fn invalid_link(
    req: &HttpRequest,
    ctx: PageCtx,
    state: &web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let reference =
        crate::web::record_failure(state, req, "PWD", Failure::new(reason::RESET_LINK_INVALID))
            .await;
    let page = InvalidLinkPage { ctx, reference };
    page.ctx.render(StatusCode::GONE, &page)
}

/// `GET /password/reset?token=...`: the new-password form, if the link works.
pub async fn reset_get(
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    query: web::Query<ResetQuery>,
) -> Result<HttpResponse, AppError> {
    let token = query.token.clone().unwrap_or_default();
    if account_for(&state, &token).await?.is_none() {
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
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<crate::forms::NewPasswordForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let Some(account) = account_for(&state, &form.token).await? else {
        return invalid_link(&req, ctx, &state).await;
    };
    let stale = !crate::session::csrf_valid(&session, &form.csrf_token);
    let password = Password::parse_for_owner(
        &form.password,
        &form.password_confirm,
        &account.email,
        &account.nik,
        &account.full_name,
        &state.common_passwords,
    );
    let password = match (password, stale) {
        (Ok(password), false) => password,
        (result, stale) => {
            let problem = result.err();
            let confirm = matches!(
                problem,
                Some(Problem::PasswordConfirmEmpty | Problem::PasswordMismatch)
            );
            let field = if confirm {
                "password_confirm"
            } else {
                "password"
            };
            // As on the link page: a stale page is logged (the citizen met
            // it, and may call); a password typed wrongly is theirs to fix.
            let (reference, status) = if stale {
                let failure = Failure::new(reason::STALE_FORM).email(&account.email);
                let reference = crate::web::record_failure(&state, &req, "STL", failure).await;
                (Some(reference), StatusCode::FORBIDDEN)
            } else {
                (None, StatusCode::UNPROCESSABLE_ENTITY)
            };
            let text = problem.map(|p| p.text(ctx.lang));
            let page = ResetPage {
                csrf: crate::session::csrf_token(&session),
                token: form.token,
                password_error: text.filter(|_| !confirm),
                confirm_error: text.filter(|_| confirm),
                summary: text.map(|t| vec![(field, t)]).unwrap_or_default(),
                stale,
                reference,
                ctx,
            };
            return page.ctx.render(status, &page);
        }
    };
    let retry = format!("/password/reset?token={}", form.token);
    let password_hash = crate::passwords::hash(&state.hashing(), password, &retry).await?;
    let hash =
        crate::domain::link_token::link_token_hash(&form.token).expect("checked by account_for");
    let changed = state
        .db(move |conn| accounts::reset_password(conn, &hash, &password_hash, crate::db::now()))
        .await?;
    if !changed {
        return invalid_link(&req, ctx, &state).await;
    }
    tracing::info!("password reset; every session of the account ended");
    crate::session::sign_out(&session);
    Ok(see_other("/login?reset=1"))
}

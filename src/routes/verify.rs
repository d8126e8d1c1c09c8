//! `GET /verify?token=...` confirms an email address; `POST /verify/resend`
//! sends the link again.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::db::accounts::{self, NewToken, PURPOSE_VERIFY, VerifyOutcome};
use crate::domain::Email;
use crate::errors::AppError;
use crate::failures::{self, Failure, reason};
use crate::i18n::Lang;
use crate::startup::AppState;
use crate::web::PageCtx;
use crate::web::see_other;

#[derive(Debug, PartialEq, Eq)]
pub enum ResendResult {
    Sent,
    /// A link went out less than the cooldown ago.
    Cooldown,
    /// No registration is waiting for this address (none, or verified).
    NothingWaiting,
}

/// Sends a new verification link to an unverified account's address unless
/// one went out within the cooldown. Older links stop working.
pub async fn resend_verification(
    state: &web::Data<AppState>,
    email: &Email,
    lang: Lang,
) -> Result<ResendResult, AppError> {
    let address = email.as_str().to_string();
    let cooldown = chrono::Duration::seconds(i64::from(state.settings.resend_cooldown_secs));
    let ttl = chrono::Duration::hours(i64::from(state.settings.verify_token_ttl_hours));
    let settings = state.settings.clone();
    let result = state
        .db(move |conn| -> Result<ResendResult, AppError> {
            let now = crate::mail::now();
            let Some(account) = accounts::find_by_email(conn, &address)? else {
                return Ok(ResendResult::NothingWaiting);
            };
            if account.is_verified() {
                return Ok(ResendResult::NothingWaiting);
            }
            if let Some(last) = accounts::last_token_issued(conn, &account.id, PURPOSE_VERIFY)?
                && last + cooldown > now
            {
                return Ok(ResendResult::Cooldown);
            }
            let (token, token_hash) = crate::session::new_link_token();
            let mail = crate::mail::verification_mail(
                &settings,
                lang,
                &account.id,
                &account.email,
                &account.full_name,
                &token,
                now,
            )
            .map_err(AppError::internal)?;
            accounts::issue_token(
                conn,
                &NewToken {
                    token_hash: &token_hash,
                    account_id: &account.id,
                    purpose: PURPOSE_VERIFY,
                    created_at: now,
                    expires_at: now + ttl,
                },
                &mail,
            )?;
            Ok(ResendResult::Sent)
        })
        .await?;
    match result {
        ResendResult::Sent => {
            tracing::info!("verification link sent again");
            state.wake_mailer.notify_one();
        }
        ResendResult::Cooldown => tracing::info!("verification resend refused: cooldown"),
        ResendResult::NothingWaiting => {}
    }
    Ok(result)
}

#[derive(Deserialize)]
pub struct ResendForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
}

/// `POST /verify/resend`. The answer is the same whether or not a
/// registration waits for the address, so it reveals nothing.
pub async fn resend(
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<ResendForm>,
) -> Result<HttpResponse, AppError> {
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return Ok(see_other("/register/check-email?notice=stale"));
    }
    let email = match Email::parse(&form.email) {
        Ok(email) => email,
        Err(problem) => {
            let typed = form.email.clone();
            return super::register::check_email::render(
                ctx,
                &session,
                &state,
                "",
                Some(problem),
                typed,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
            );
        }
    };
    resend_verification(&state, &email, ctx.lang).await?;
    crate::session::set_pending_email(&session, email.as_str());
    Ok(see_other("/register/check-email?notice=resent"))
}

#[derive(Deserialize)]
pub struct VerifyQuery {
    token: Option<String>,
}

#[derive(Template)]
#[template(path = "verify/result.html")]
struct VerifyPage {
    ctx: PageCtx,
    title: &'static str,
    body: &'static str,
    signed_in_next: bool,
    /// Offer a resend form, with the address when it is known.
    resend: Option<Option<(String, String)>>,
    csrf: String,
    reference: Option<String>,
}

/// `GET /verify?token=...`.
pub async fn verify(
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    query: web::Query<VerifyQuery>,
) -> Result<HttpResponse, AppError> {
    let token = query.token.clone().unwrap_or_default();
    let outcome = if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hash = crate::session::hash_link_token(&token);
        state
            .db(move |conn| accounts::verify_email(conn, &hash, crate::mail::now()))
            .await?
    } else {
        VerifyOutcome::Unknown
    };
    let failure = match &outcome {
        VerifyOutcome::Expired { email } => Some(Failure::new(reason::LINK_EXPIRED).email(email)),
        VerifyOutcome::Superseded { email } => {
            Some(Failure::new(reason::LINK_SUPERSEDED).email(email))
        }
        VerifyOutcome::Unknown => Some(Failure::new(reason::LINK_UNKNOWN)),
        _ => None,
    };
    let reference = match failure {
        Some(failure) => Some(failures::record(&state, &req, "VER", failure).await),
        None => None,
    };
    let t = ctx.t;
    let with_mask = |e: String| {
        let masked = crate::domain::email_mask(&e);
        Some((e, masked))
    };
    let (status, title, body, signed_in_next, resend) = match outcome {
        VerifyOutcome::Verified { .. } => {
            tracing::info!("email address verified");
            (
                StatusCode::OK,
                t.verify_done_title,
                t.verify_done_body,
                true,
                None,
            )
        }
        VerifyOutcome::AlreadyVerified { .. } => (
            StatusCode::OK,
            t.verify_again_title,
            t.verify_again_body,
            true,
            None,
        ),
        VerifyOutcome::Expired { email } => (
            StatusCode::GONE,
            t.verify_expired_title,
            t.verify_expired_body,
            false,
            Some(with_mask(email)),
        ),
        VerifyOutcome::Superseded { email } => (
            StatusCode::GONE,
            t.verify_superseded_title,
            t.verify_superseded_body,
            false,
            Some(with_mask(email)),
        ),
        VerifyOutcome::Unknown => (
            StatusCode::NOT_FOUND,
            t.verify_unknown_title,
            t.verify_unknown_body,
            false,
            Some(None),
        ),
    };
    let page = VerifyPage {
        title,
        body,
        signed_in_next,
        resend,
        csrf: crate::session::csrf_token(&session),
        reference,
        ctx,
    };
    page.ctx.render(status, &page)
}

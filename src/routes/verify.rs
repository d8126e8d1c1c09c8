//! The mailed link: `GET /verify?token=...` shows whose registration it is
//! and asks for the password (it changes nothing, for HEAD and GET alike, so
//! mail scanners that open every link verify nothing); `POST /verify` sets
//! the password, verifies the address and signs the citizen in.
//! `POST /verify/resend` sends one more link (earlier ones keep working).

use actix_session::Session;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::domain::{Email, Problem};
use crate::error::AppError;
use crate::services::verification::{
    self, Choice, ChosenPassword, LinkState, Registration, ResendOutcome,
};
use crate::state::AppState;
use crate::web::see_other;
use crate::web::{Page, PageCtx};

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
    Page(_, ctx, session, state): Page,
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
                false,
            );
        }
    };
    // The address this browser registered: its owner already knows a
    // registration waits, so the page says exactly what happened. Any other
    // address gets one answer whatever happened (sent, held back by the
    // cooldown, or no registration waiting), which reveals nothing.
    let own = crate::session::pending_email(&session).as_deref() == Some(email.as_str());
    // Mail to this browser's own address bounced: sending again would not
    // arrive; the page says so and offers to correct the address.
    if own && crate::services::mail_events::undeliverable(&state.services(), email.as_str()).await?
    {
        return Ok(see_other("/register/check-email?notice=bounced"));
    }
    let outcome =
        verification::resend(&state.services(), &email, ctx.lang, state.clock.now()).await?;
    crate::session::set_pending_email(&session, email.as_str());
    Ok(see_other(match outcome {
        ResendOutcome::Sent if own => "/register/check-email?notice=sent",
        ResendOutcome::Cooldown if own => "/register/check-email?notice=cooldown",
        _ => "/register/check-email?notice=resent",
    }))
}

#[derive(Deserialize)]
pub struct VerifyQuery {
    token: Option<String>,
}

/// The form to choose the password (or, for a registration made with the
/// old form, the one button that confirms it).
#[derive(Template)]
#[template(path = "verify/choose.html")]
struct ChoosePage {
    ctx: PageCtx,
    csrf: String,
    token: String,
    name: String,
    masked_email: String,
    legacy: bool,
    password_error: Option<&'static str>,
    confirm_error: Option<&'static str>,
    summary: Vec<(&'static str, &'static str)>,
    stale: bool,
}

/// Every other state a link can lead to.
#[derive(Template)]
#[template(path = "verify/result.html")]
struct ResultPage {
    ctx: PageCtx,
    title: &'static str,
    body: &'static str,
    is_error: bool,
    sign_in: bool,
    /// Offer a resend form, with the address when it is known.
    resend: Option<Option<(String, String)>>,
    csrf: String,
    reference: Option<String>,
    /// The NIK was taken by another account: the "which address did I
    /// use?" form, with that account's address masked.
    remind: Option<Option<String>>,
}

/// `GET /verify?token=...` (and HEAD): shows, never changes. Only the time
/// a link was opened is noted (GET only), for the staff timeline.
pub async fn verify(
    Page(req, ctx, session, state): Page,
    query: web::Query<VerifyQuery>,
) -> Result<HttpResponse, AppError> {
    let token = query.token.clone().unwrap_or_default();
    let record_open = req.method() == Method::GET;
    let link =
        verification::open_link(&state.services(), &token, record_open, state.clock.now()).await?;
    match link {
        LinkState::Ready { registration } => choose_page(
            ctx,
            &session,
            token,
            &registration,
            None,
            false,
            StatusCode::OK,
        ),
        other => link_state_page(&req, ctx, &session, &state, other).await,
    }
}

fn choose_page(
    ctx: PageCtx,
    session: &Session,
    token: String,
    registration: &Registration,
    problem: Option<Problem>,
    stale: bool,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let errors = crate::forms::PasswordErrors::new(problem, ctx.lang);
    let page = ChoosePage {
        csrf: crate::session::csrf_token(session),
        token,
        name: registration.full_name.clone(),
        masked_email: crate::domain::email_mask(&registration.email),
        legacy: registration.has_legacy_password(),
        password_error: errors.password,
        confirm_error: errors.confirm,
        summary: errors.summary,
        stale,
        ctx,
    };
    page.ctx.render(status, &page)
}

/// The page for a link that cannot be used to choose a password (any more).
async fn link_state_page(
    req: &HttpRequest,
    ctx: PageCtx,
    session: &Session,
    state: &web::Data<AppState>,
    link: LinkState,
) -> Result<HttpResponse, AppError> {
    let t = ctx.t;
    let reference =
        verification::note_link_problem(&state.services(), &crate::web::client(req, state), &link)
            .await;
    let with_mask = |e: String| {
        let masked = crate::domain::email_mask(&e);
        Some((e, masked))
    };
    let remind = match &link {
        LinkState::NikTaken { registration } => {
            crate::session::set_remind_nik(session, &registration.nik);
            let holder =
                crate::services::reminder::holder(&state.services(), &registration.nik).await?;
            Some(holder.filter(|_| !state.settings.enumeration_safe))
        }
        _ => None,
    };
    let (status, title, body, sign_in, resend) = match link {
        LinkState::Done { .. } => (
            StatusCode::OK,
            t.verify_again_title,
            t.verify_again_body,
            true,
            None,
        ),
        LinkState::Expired { email } => (
            StatusCode::GONE,
            t.verify_expired_title,
            t.verify_expired_body,
            false,
            Some(with_mask(email)),
        ),
        LinkState::NikTaken { .. } => (
            StatusCode::CONFLICT,
            t.verify_nik_taken_title,
            t.verify_nik_taken_body,
            true,
            None,
        ),
        LinkState::Unknown | LinkState::Ready { .. } => (
            StatusCode::NOT_FOUND,
            t.verify_unknown_title,
            t.verify_unknown_body,
            false,
            Some(None),
        ),
    };
    let page = ResultPage {
        title,
        body,
        is_error: status != StatusCode::OK,
        sign_in,
        resend,
        csrf: crate::session::csrf_token(session),
        reference,
        remind,
        ctx,
    };
    page.ctx.render(status, &page)
}

/// `POST /verify`: checks the link and the password (no hashing before
/// both are right), hashes on the pool (503 with `Refresh` back to the link
/// when it is full), then makes the account and signs the citizen in.
pub async fn choose(
    Page(req, ctx, session, state): Page,
    form: web::Form<crate::forms::NewPasswordForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let retry = format!("/verify?token={}", form.token);
    let fresh = crate::session::csrf_valid(&session, &form.csrf_token);
    let choice = verification::choose_password(
        &state.services(),
        &crate::web::client(&req, &state),
        &form.token,
        ChosenPassword {
            password: &form.password,
            confirm: &form.password_confirm,
        },
        fresh,
        &retry,
        state.clock.now(),
    )
    .await?;
    match choice {
        Choice::Completed { account_id, epoch } => {
            super::login::start_session(&req, &state, &session, &account_id, epoch).await?;
            Ok(see_other("/account?welcome=1"))
        }
        Choice::Again {
            registration,
            problem,
        } => choose_page(
            ctx,
            &session,
            form.token,
            &registration,
            problem,
            !fresh,
            if fresh {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::FORBIDDEN
            },
        ),
        Choice::Link(other) => link_state_page(&req, ctx, &session, &state, *other).await,
    }
}

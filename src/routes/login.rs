//! Citizen sign-in: `GET/POST /login`, `POST /logout`, `GET /account`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::domain::Problem;
use crate::error::AppError;
use crate::services::accounts::{self, Account, SignIn};
use crate::services::failures::{Failure, reason};
use crate::state::AppState;
use crate::web::see_other;
use crate::web::{Page, PageCtx};

#[derive(Template)]
#[template(path = "login/form.html")]
struct LoginPage {
    ctx: PageCtx,
    csrf: String,
    email: String,
    error: Option<&'static str>,
    /// An empty password field (the only error shown on that field).
    password_error: Option<&'static str>,
    /// Seconds before the next attempt counts (growing delays).
    wait_secs: Option<i64>,
    stale: bool,
    signed_out: bool,
    reset_done: bool,
    reference: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    signed_out: Option<String>,
    reset: Option<String>,
}

pub async fn get(
    Page(_, ctx, session, state): Page,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, AppError> {
    // Already signed in: the account, not the form again.
    if ctx.signed_in && current_account(&session, &state).await?.is_some() {
        return Ok(see_other("/account"));
    }
    let csrf = crate::session::csrf_token(&session);
    let page = LoginPage {
        csrf: crate::compress::placeholder(0),
        email: String::new(),
        error: None,
        password_error: None,
        wait_secs: None,
        stale: false,
        signed_out: query.signed_out.is_some(),
        reset_done: query.reset.is_some(),
        reference: None,
        ctx,
    };
    page.ctx.render_spliced(StatusCode::OK, &page, &[&csrf])
}

#[derive(Template)]
#[template(path = "login/unverified.html")]
struct UnverifiedPage {
    ctx: PageCtx,
    csrf: String,
    email: String,
    masked: String,
}

pub async fn post(
    Page(req, ctx, session, state): Page,
    form: web::Form<crate::forms::SignInForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let retry = |ctx: PageCtx,
                 error: Option<&'static str>,
                 stale: bool,
                 status: StatusCode,
                 reference: Option<String>| {
        let page = LoginPage {
            csrf: crate::session::csrf_token(&session),
            email: form.email.clone(),
            error,
            password_error: None,
            wait_secs: None,
            stale,
            signed_out: false,
            reset_done: false,
            reference,
            ctx,
        };
        page.ctx.render(status, &page)
    };
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        let failure = Failure::new(reason::STALE_FORM).email(&form.email);
        let reference = crate::web::record_failure(&state, &req, "STL", failure).await;
        return retry(ctx, None, true, StatusCode::FORBIDDEN, Some(reference));
    }
    // An empty field is a slip, not a guess: said at once, not counted.
    let empty_email = form.email.trim().is_empty();
    if empty_email || form.password.is_empty() {
        let (email_error, password_error) = if empty_email {
            (Some(Problem::EmailEmpty.text(ctx.lang)), None)
        } else {
            (None, Some(Problem::PasswordEmpty.text(ctx.lang)))
        };
        let page = LoginPage {
            csrf: crate::session::csrf_token(&session),
            email: form.email.clone(),
            error: email_error,
            password_error,
            wait_secs: None,
            stale: false,
            signed_out: false,
            reset_done: false,
            reference: None,
            ctx,
        };
        return page.ctx.render(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let client = crate::web::client(&req, &state);
    match accounts::sign_in(
        &state.services(),
        &client,
        &form.email,
        form.password.clone(),
    )
    .await?
    {
        // Wrong passwords in a row: each next attempt waits a little longer
        // (the form stays filled; the wait is on the page and in the header).
        SignIn::Wait { retry_after_secs } => {
            let page = LoginPage {
                csrf: crate::session::csrf_token(&session),
                email: form.email.clone(),
                error: None,
                password_error: None,
                wait_secs: Some(retry_after_secs),
                stale: false,
                signed_out: false,
                reset_done: false,
                reference: None,
                ctx,
            };
            let mut response = page.ctx.render(StatusCode::TOO_MANY_REQUESTS, &page)?;
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(retry_after_secs),
            );
            Ok(response)
        }
        SignIn::Unverified { email } => {
            let page = UnverifiedPage {
                csrf: crate::session::csrf_token(&session),
                masked: crate::domain::email_mask(&email),
                email,
                ctx,
            };
            page.ctx.render(StatusCode::FORBIDDEN, &page)
        }
        SignIn::Suspended { case } => {
            let page = SuspendedPage { case, ctx };
            page.ctx.render(StatusCode::FORBIDDEN, &page)
        }
        SignIn::SignedIn {
            account_id,
            epoch,
            kept,
        } => {
            start_session(&req, &state, &session, &account_id, epoch).await?;
            Ok(see_other(if kept {
                "/account?done=kept"
            } else {
                "/account"
            }))
        }
        SignIn::Wrong { reference } => {
            let t = ctx.t;
            retry(
                ctx,
                Some(t.login_wrong),
                false,
                StatusCode::UNPROCESSABLE_ENTITY,
                reference,
            )
        }
    }
}

/// Sign-in to an account suspended by a case: which case, and how to
/// object (the mailed status link) or reach support.
#[derive(Template)]
#[template(path = "login/suspended.html")]
struct SuspendedPage {
    ctx: PageCtx,
    case: String,
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /logout`: ends this browser's session (its record too, so a copy
/// of the cookie no longer opens the account). Other devices stay signed in.
pub async fn logout(
    Page(_, _, session, state): Page,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, AppError> {
    sign_out(session, state, form, false).await
}

/// `POST /logout/everywhere`: ends every session of the account, on every
/// device, this one included.
pub async fn logout_everywhere(
    Page(_, _, session, state): Page,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, AppError> {
    sign_out(session, state, form, true).await
}

/// Both sign-out buttons: this session, or (`everywhere`) all of them.
async fn sign_out(
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<LogoutForm>,
    everywhere: bool,
) -> Result<HttpResponse, AppError> {
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return Ok(see_other("/account"));
    }
    let now = state.clock.now();
    if everywhere {
        if let Some(account) = current_account(&session, &state).await? {
            let ended = accounts::end_every_session(&state.services(), account.id, now).await?;
            tracing::info!(ended, "citizen signed out everywhere");
        }
    } else if let Some((_, _, sid)) = crate::session::signed_in(&session) {
        crate::services::sessions::end(&state.services(), sid, now).await?;
    }
    crate::session::sign_out(&session);
    Ok(see_other("/login?signed_out=1"))
}

/// Signs the citizen in: a server-side session record, and its id in the
/// (encrypted) cookie.
pub async fn start_session(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    session: &Session,
    account_id: &str,
    epoch: i64,
) -> Result<(), AppError> {
    let client = crate::web::client(req, state);
    let sid = crate::services::sessions::start(
        &state.services(),
        &crate::services::sessions::CITIZEN,
        account_id,
        Some(&client),
        state.clock.now(),
    )
    .await?;
    crate::session::sign_in(session, account_id, epoch, &sid);
    Ok(())
}

/// The signed-in account, or `None` when the session is absent or ended:
/// its record revoked (sign-out, sign out everywhere, password change),
/// idle or too old, or its epoch moved on.
pub async fn current_account(
    session: &Session,
    state: &web::Data<AppState>,
) -> Result<Option<Account>, AppError> {
    let Some((id, epoch, sid)) = crate::session::signed_in(session) else {
        return Ok(None);
    };
    accounts::session_account(&state.services(), id, epoch, sid, state.clock.now()).await
}

//! Citizen sign-in: `GET/POST /login`, `POST /logout`, `GET /account`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::db::accounts::{self, Account};
use crate::db::registrations;
use crate::domain::Email;
use crate::errors::AppError;
use crate::failures::{self, Failure, reason};
use crate::startup::AppState;
use crate::web::PageCtx;
use crate::web::see_other;

#[derive(Template)]
#[template(path = "login/form.html")]
struct LoginPage {
    ctx: PageCtx,
    csrf: String,
    email: String,
    error: Option<&'static str>,
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
    ctx: PageCtx,
    session: Session,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, AppError> {
    let page = LoginPage {
        csrf: crate::session::csrf_token(&session),
        email: String::new(),
        error: None,
        stale: false,
        signed_out: query.signed_out.is_some(),
        reset_done: query.reset.is_some(),
        reference: None,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
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
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let retry = |ctx: PageCtx,
                 error: Option<&'static str>,
                 stale: bool,
                 status: StatusCode,
                 reference: String| {
        let page = LoginPage {
            csrf: crate::session::csrf_token(&session),
            email: form.email.clone(),
            error,
            stale,
            signed_out: false,
            reset_done: false,
            reference: Some(reference),
            ctx,
        };
        page.ctx.render(status, &page)
    };
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        let failure = Failure::new(reason::STALE_FORM).email(&form.email);
        let reference = failures::record(&state, &req, "STL", failure).await;
        return retry(ctx, None, true, StatusCode::FORBIDDEN, reference);
    }
    // Counted before any hashing: parallel guesses meet the limit too.
    let window = chrono::Duration::minutes(state.settings.signin_lock_minutes);
    if let failures::Allowance::Refused { retry_after_secs } = failures::reserve_sign_in(
        &state,
        &req,
        "citizen",
        &form.email,
        state.settings.signin_attempts,
        window,
    )
    .await?
    {
        let failure = Failure::new(reason::RATE_LIMITED).email(&form.email);
        let reference = failures::record(&state, &req, "LIM", failure).await;
        tell_owner_sign_in_paused(&state, &form.email, window).await?;
        return Err(AppError::RateLimited {
            reference,
            retry_after_secs,
        });
    }
    // An account, or else a registration made with the old form (which
    // asked for the password at sign-up) still waiting for its link.
    let found = match Email::parse(&form.email) {
        Ok(email) => {
            state
                .db(move |conn| -> Result<_, diesel::result::Error> {
                    let account = accounts::find_by_email(conn, email.as_str())?;
                    let waiting = match account {
                        Some(_) => None,
                        None => registrations::find_pending_by_email(conn, email.as_str())?
                            .filter(|r| r.has_legacy_password()),
                    };
                    Ok((account, waiting))
                })
                .await?
        }
        Err(_) => (None, None),
    };
    let (account, waiting) = found;
    let stored = match (&account, &waiting) {
        (Some(account), _) => Some(account.password_hash.clone()),
        (None, Some(registration)) => registration.legacy_password_hash.clone(),
        (None, None) => None,
    };
    let matches = crate::passwords::verify(&state, form.password.clone(), stored, "/login").await?;
    if matches && let (None, Some(registration)) = (&account, waiting) {
        let page = UnverifiedPage {
            csrf: crate::session::csrf_token(&session),
            masked: crate::domain::email_mask(&registration.email),
            email: registration.email,
            ctx,
        };
        return page.ctx.render(StatusCode::FORBIDDEN, &page);
    }
    match account {
        Some(account) if matches => {
            failures::refund_sign_in(&state, "citizen", &form.email).await?;
            crate::session::sign_in(&session, &account.id, account.session_epoch);
            tracing::info!("citizen signed in");
            Ok(see_other("/account"))
        }
        _ => {
            let failure = Failure::new(reason::SIGN_IN_FAILED)
                .fields(vec!["email", "password"])
                .email(&form.email);
            let reference = failures::record(&state, &req, "LGN", failure).await;
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

/// Mails the owner of the account (if it is one) once per pause: sign-in
/// is paused after too many wrong passwords, and how to get back in now.
async fn tell_owner_sign_in_paused(
    state: &web::Data<AppState>,
    typed: &str,
    window: chrono::Duration,
) -> Result<(), AppError> {
    let Ok(email) = Email::parse(typed) else {
        return Ok(());
    };
    let once_key = format!(
        "signin-paused-mail:{}",
        state.failures.keyed_hash("email", email.as_str())
    );
    let settings = state.settings.clone();
    let queued = state
        .db(move |conn| -> Result<bool, AppError> {
            let now = crate::mail::now();
            if !failures::rate_allow(conn, &once_key, now, window, 1)?.is_allowed() {
                return Ok(false);
            }
            let Some(account) = accounts::find_by_email(conn, email.as_str())? else {
                return Ok(false);
            };
            let mail = crate::mail::sign_in_locked_mail(
                &settings,
                &account,
                settings.signin_attempts,
                window.num_minutes(),
                now,
            )
            .map_err(AppError::internal)?;
            crate::db::outbox::insert_mail(conn, &mail)?;
            Ok(true)
        })
        .await?;
    if queued {
        tracing::warn!("citizen sign-in paused after wrong passwords; owner mailed");
        state.wake_mailer.notify_one();
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /logout`. A stale token still signs out (it only ends a session),
/// but never ends someone else's: the session is the browser's own.
pub async fn logout(session: Session, form: web::Form<LogoutForm>) -> HttpResponse {
    if crate::session::csrf_valid(&session, &form.csrf_token) {
        crate::session::sign_out(&session);
        return see_other("/login?signed_out=1");
    }
    see_other("/account")
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    ctx: PageCtx,
    csrf: String,
    account: Account,
    nik_masked: String,
    /// Just made through the mailed link.
    welcome: bool,
}

/// The signed-in account, or `None` when the session is absent or ended
/// (its epoch no longer matches, e.g. after a password reset).
pub async fn current_account(
    session: &Session,
    state: &web::Data<AppState>,
) -> Result<Option<Account>, AppError> {
    let Some((id, epoch)) = crate::session::signed_in(session) else {
        return Ok(None);
    };
    let account = state
        .db(move |conn| accounts::find_by_id(conn, &id))
        .await?;
    Ok(account.filter(|a| a.session_epoch == epoch && a.is_verified()))
}

#[derive(Deserialize)]
pub struct AccountQuery {
    welcome: Option<String>,
}

pub async fn account(
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    query: web::Query<AccountQuery>,
) -> Result<HttpResponse, AppError> {
    let Some(account) = current_account(&session, &state).await? else {
        crate::session::sign_out(&session);
        return Ok(see_other("/login"));
    };
    let page = AccountPage {
        csrf: crate::session::csrf_token(&session),
        nik_masked: crate::domain::mask_nik(&account.nik),
        welcome: query.welcome.is_some(),
        account,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

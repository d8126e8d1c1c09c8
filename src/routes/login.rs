//! Citizen sign-in: `GET/POST /login`, `POST /logout`, `GET /account`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::db::accounts::{self, Account};
use crate::db::{registrations, sessions};
use crate::domain::{Email, Problem};
use crate::error::AppError;
use crate::failures::{self, Failure, reason};
use crate::state::AppState;
use crate::web::PageCtx;
use crate::web::see_other;

/// Wrong passwords on one address in an hour that are neither logged nor
/// given a reference code.
pub const FREE_SIGN_IN_TRIES: i64 = 2;

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
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
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
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
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
    // Counted before any hashing: parallel guesses meet the limit too.
    let window = chrono::Duration::minutes(state.settings.signin_lock_minutes);
    match crate::failures::reserve_sign_in(
        &state.failure_ctx(),
        &crate::web::client(&req, &state),
        "citizen",
        &form.email,
        state.settings.signin_attempts,
        window,
    )
    .await?
    {
        failures::SignInGate::Open => {}
        // Wrong passwords in a row: each next attempt waits a little longer
        // (the form stays filled; the wait is on the page and in the header).
        failures::SignInGate::Wait { retry_after_secs } => {
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
            return Ok(response);
        }
        failures::SignInGate::Paused { retry_after_secs } => {
            let failure = Failure::new(reason::RATE_LIMITED).email(&form.email);
            let reference = crate::web::record_failure(&state, &req, "LIM", failure).await;
            tell_owner_sign_in_paused(&state, &form.email, window).await?;
            return Err(AppError::RateLimited {
                reference,
                retry_after_secs,
            });
        }
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
    let matches =
        crate::passwords::verify(&state.hashing(), form.password.clone(), stored, "/login").await?;
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
            crate::failures::refund_sign_in(&state.failure_ctx(), "citizen", &form.email).await?;
            start_session(&state, &session, &account.id, account.session_epoch).await?;
            tracing::info!("citizen signed in");
            Ok(see_other("/account"))
        }
        _ => {
            // A mistyped password is for the citizen to fix, not for
            // support: the failure log (and a reference code to quote)
            // starts with the third wrong try on an address in an hour.
            let tries_key = format!(
                "signin-tries:{}",
                state
                    .failures
                    .keyed_hash("email", &form.email.trim().to_lowercase())
            );
            let stuck =
                !failures::allow(&state.failure_ctx(), vec![(tries_key, FREE_SIGN_IN_TRIES)])
                    .await?
                    .is_allowed();
            let reference = if stuck {
                let failure = Failure::new(reason::SIGN_IN_FAILED)
                    .fields(vec!["email", "password"])
                    .email(&form.email);
                Some(crate::web::record_failure(&state, &req, "LGN", failure).await)
            } else {
                None
            };
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
            let now = crate::db::now();
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

/// `POST /logout`: ends this browser's session (its record too, so a copy
/// of the cookie no longer opens the account). Other devices stay signed in.
pub async fn logout(
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, AppError> {
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return Ok(see_other("/account"));
    }
    if let Some((_, _, sid)) = crate::session::signed_in(&session) {
        state
            .db(move |conn| sessions::revoke(conn, &sid, crate::db::now()))
            .await?;
    }
    crate::session::sign_out(&session);
    Ok(see_other("/login?signed_out=1"))
}

/// `POST /logout/everywhere`: ends every session of the account, on every
/// device, this one included.
pub async fn logout_everywhere(
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, AppError> {
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return Ok(see_other("/account"));
    }
    if let Some(account) = current_account(&session, &state).await? {
        let ended = state
            .db(move |conn| {
                sessions::revoke_all(conn, sessions::KIND_CITIZEN, &account.id, crate::db::now())
            })
            .await?;
        tracing::info!(ended, "citizen signed out everywhere");
    }
    crate::session::sign_out(&session);
    Ok(see_other("/login?signed_out=1"))
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

/// How long a citizen's session lasts at most, and idle.
pub const SESSION_HOURS: i64 = 12;
pub const SESSION_IDLE_MINUTES: i64 = 60;

/// Signs the citizen in: a server-side session record, and its id in the
/// (encrypted) cookie.
pub async fn start_session(
    state: &web::Data<AppState>,
    session: &Session,
    account_id: &str,
    epoch: i64,
) -> Result<(), AppError> {
    let subject = account_id.to_string();
    let sid = state
        .db(move |conn| {
            sessions::start(
                conn,
                sessions::KIND_CITIZEN,
                &subject,
                crate::db::now(),
                chrono::Duration::hours(SESSION_HOURS),
            )
        })
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
    let account = state
        .db(
            move |conn| -> Result<Option<Account>, diesel::result::Error> {
                let now = crate::db::now();
                let idle = chrono::Duration::minutes(SESSION_IDLE_MINUTES);
                match sessions::check(conn, sessions::KIND_CITIZEN, &sid, now, idle)? {
                    Some(subject) if subject == id => accounts::find_by_id(conn, &id),
                    _ => Ok(None),
                }
            },
        )
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

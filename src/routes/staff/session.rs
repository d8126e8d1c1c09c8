//! Staff sign-in (password, then the second factor in `code.rs`) and sign-out.
use super::*;

// ---------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "staff/login.html")]
struct LoginPage {
    ctx: PageCtx,
    csrf: String,
    email: String,
    error: Option<&'static str>,
}

pub async fn login_get(
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if current_staff(&req, &state).await?.is_some() {
        return Ok(see_other("/staff/failures"));
    }
    let page = LoginPage {
        csrf: crate::session::csrf_token(&session),
        email: String::new(),
        error: None,
        ctx,
    };
    page.ctx.render(StatusCode::OK, &page)
}

pub async fn login_post(
    req: HttpRequest,
    ctx: PageCtx,
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<crate::forms::SignInForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let retry = |ctx: PageCtx, error: &'static str, status: StatusCode| {
        let page = LoginPage {
            csrf: crate::session::csrf_token(&session),
            email: form.email.clone(),
            error: Some(error),
            ctx,
        };
        page.ctx.render(status, &page)
    };
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        let t = ctx.t;
        return retry(ctx, t.reg_stale, StatusCode::FORBIDDEN);
    }
    let email = form.email.trim().to_lowercase();
    // Counted before any hashing, atomically: 30 parallel guesses get 5
    // checks, not 30 (the lock below only shows what this enforces).
    let gate = crate::failures::reserve_sign_in(
        &state.failure_ctx(),
        &crate::web::client(&req, &state),
        "staff",
        &email,
        i64::from(staff_db::MAX_FAILED_LOGINS),
        Duration::minutes(staff_db::LOCK_MINUTES),
    )
    .await?;
    if gate.retry_after().is_some() {
        return refused_sign_in(ctx, gate, retry);
    }
    let lookup = email.clone();
    let found = state
        .db(move |conn| staff_db::find_by_email(conn, &lookup))
        .await?;
    let now = crate::db::now();
    if let Some(staff) = &found
        && staff.is_locked(now)
    {
        tracing::warn!("staff sign-in refused: account locked");
        let t = ctx.t;
        return retry(ctx, t.staff_locked, StatusCode::TOO_MANY_REQUESTS);
    }
    let stored = found.as_ref().map(|s| s.password_hash.clone());
    let matches = crate::passwords::verify(
        &state.hashing(),
        form.password.clone(),
        stored,
        "/staff/login",
    )
    .await?;
    match found {
        Some(staff) if matches && staff.disabled_at.is_none() => {
            crate::failures::refund_sign_in(&state.failure_ctx(), "staff", &email).await?;
            let id = staff.id.clone();
            state
                .db(move |conn| staff_db::login_succeeded(conn, &id))
                .await?;
            if state.settings.staff_second_factor_required() {
                // The password was right; the code comes next (or enrolment).
                super::code::await_code(&session, &staff);
                return Ok(see_other("/staff/login/code"));
            }
            let cookie = start_session(&state, &staff, "sign_in").await?;
            let mut response = see_other("/staff/failures");
            response.add_cookie(&cookie).map_err(AppError::internal)?;
            Ok(response)
        }
        other => {
            if let Some(staff) = other {
                state
                    .db(move |conn| staff_db::login_failed(conn, &staff.id, now))
                    .await?;
            }
            tracing::info!("staff sign-in refused");
            let t = ctx.t;
            retry(ctx, t.login_wrong, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

/// The page for a refused attempt (too soon, or paused), with a
/// `Retry-After` that says when.
pub(super) fn refused_sign_in(
    ctx: PageCtx,
    gate: crate::failures::SignInGate,
    page: impl FnOnce(PageCtx, &'static str, StatusCode) -> Result<HttpResponse, AppError>,
) -> Result<HttpResponse, AppError> {
    tracing::warn!("staff sign-in refused: too many attempts");
    let t = ctx.t;
    let retry_after_secs = gate.retry_after().unwrap_or(1);
    let message = match gate {
        crate::failures::SignInGate::Wait { .. } => t.staff_wait,
        _ => t.staff_locked,
    };
    let mut response = page(ctx, message, StatusCode::TOO_MANY_REQUESTS)?;
    response.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from(retry_after_secs),
    );
    Ok(response)
}

/// Starts a staff session (its record, its audit row) and returns the
/// cookie that carries it.
pub(super) async fn start_session(
    state: &web::Data<AppState>,
    staff: &staff_db::Staff,
    action: &str,
) -> Result<Cookie<'static>, AppError> {
    let user = StaffUser {
        id: staff.id.clone(),
        email: staff.email.clone(),
    };
    audit(state, &user, action, String::new()).await?;
    tracing::info!("staff signed in");
    let subject = staff.id.clone();
    let sid = state
        .db(move |conn| {
            crate::db::sessions::start(
                conn,
                crate::db::sessions::KIND_STAFF,
                &subject,
                crate::db::now(),
                Duration::hours(SESSION_HOURS),
            )
        })
        .await?;
    let expires = (chrono::Utc::now() + Duration::hours(SESSION_HOURS)).timestamp();
    let value = format!("{}|{}|{}|{sid}", staff.id, staff.session_epoch, expires);
    Ok(staff_cookie(
        &state.staff_cookie_key,
        value,
        state.settings.secure_cookies(),
    ))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

pub async fn logout(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    if !crate::session::csrf_valid(&session, &form.csrf_token) {
        return see_other("/staff/failures");
    }
    // The session's record ends too: a copy of the cookie opens nothing.
    if let Some(sid) = staff_session_id(&req, &state) {
        let ended = state
            .db(move |conn| crate::db::sessions::revoke(conn, &sid, crate::db::now()))
            .await;
        if let Err(e) = ended {
            tracing::warn!(error = %crate::error::error_chain(&e), "staff session not ended");
        }
    }
    let mut response = see_other("/staff/login");
    let _ = response.add_cookie(&removal_cookie(state.settings.secure_cookies()));
    response
}
